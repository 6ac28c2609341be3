"""A real screenshot of ghost text: Neovim in tmux at 100x30, captured with colours, rendered to PNG.

The PNG lands in ``build/test-artifacts/nvim-ghost-text.png`` (``SC2LSP_TEST_ARTIFACTS`` moves it);
``docs/img/nvim-ghost-text.png`` is a copy of one run. The test checks the captured screen itself:
the line shows the code followed by the suggestion, and the suggestion's cells carry the colour of
Neovim's ``ComplHint`` highlight, not the colour of the code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from ansi_png import colors, parse, render
from nvim_helpers import ARTIFACTS, GEOMETRY, OPTIONS, PLUGIN, SERVER, make_project, nvim_env, nvim_install, wait_for

pytestmark = pytest.mark.slow

W, H = 100, 30
GEOMETRY_LINES = GEOMETRY.read_text().split("\n")
LINE = 8  # 0-based: "    x: float" in Point (sc2-tiny goes on on that line and adds lines below)

INIT = """
vim.o.termguicolors = true
vim.o.number = true
vim.o.laststatus = 2
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. "I"
local opts = vim.json.decode(%s)
require("sc2lsp").setup(opts)
"""


def test_screenshot_of_ghost_text(tmp_path):
    import pynvim

    t0 = time.perf_counter()
    tmux = shutil.which("tmux")
    if tmux is None:  # a missing system package is a skip (`make test` installs it as root)
        pytest.skip("tmux is not installed: apt-get install tmux (make test does it as root)")
    nvim, _ = nvim_install()
    proj = make_project(tmp_path)
    init = tmp_path / "init.lua"
    init.write_text(INIT % json.dumps(json.dumps({"cmd": SERVER, "settings": OPTIONS})))
    sock = str(tmp_path / "nvim.sock")
    env = nvim_env(tmp_path / "home")
    env.update({"TERM": "xterm-256color", "COLORTERM": "truecolor"})
    tsock = str(tmp_path / "tmux.sock")
    run = [tmux, "-S", tsock, "-f", "/dev/null"]
    nvim_cmd = [str(nvim), "--clean", "--listen", sock, "--cmd", f"set rtp^={PLUGIN}", "-u", str(init),
                f"+{LINE + 1}", str(proj / "geometry.py")]
    subprocess.run([*run, "new-session", "-d", "-x", str(W), "-y", str(H), "-s", "shot",
                    "-c", str(proj), *nvim_cmd], env=env, check=True)
    try:
        subprocess.run([*run, "set-option", "-g", "status", "off"], check=True)
        subprocess.run([*run, "resize-window", "-t", "shot", "-x", str(W), "-y", str(H)], check=True)
        wait_for(lambda: os.path.exists(sock), 30, "nvim's socket")
        nv = pynvim.attach("socket", path=sock)
        wait_for(lambda: (st := nv.exec_lua(STATUS)) and st.get("state") == "ready", 120,
                 "the model to load", interval=0.2)
        t_ready = time.perf_counter()
        nv.input("A")
        ghost = wait_for(lambda: nv.exec_lua("return require('sc2lsp').ghost_text()"), 120, "ghost text")
        hint = nv.exec_lua("return vim.api.nvim_get_hl(0, { name = 'ComplHint', link = false })")
        t_ghost = time.perf_counter()
        time.sleep(0.5)  # let the screen be redrawn
        ansi = subprocess.run([*run, "capture-pane", "-e", "-p", "-t", "shot"], capture_output=True, text=True,
                              check=True).stdout
        plain = subprocess.run([*run, "capture-pane", "-p", "-t", "shot"], capture_output=True, text=True,
                               check=True).stdout
        try:
            nv.command("qa!")
        except (EOFError, OSError):
            pass  # nvim is gone before it answers
    finally:
        subprocess.run([*run, "kill-server"], capture_output=True)

    t_end = time.perf_counter()
    print(f"\ntimings: nvim + model ready {t_ready - t0:.1f} s, ghost text {t_ghost - t_ready:.1f} s, "
          f"capture and quit {t_end - t_ghost:.1f} s")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "nvim-ghost-text.ansi").write_text(ansi)
    size = render(ansi, ARTIFACTS / "nvim-ghost-text.png", W, H)
    assert size[0] >= W * 6 and size[1] >= H * 10

    code = GEOMETRY_LINES[LINE].strip()
    first = ghost.split("\n")[0]
    assert first.strip(), f"the screenshot wants ghost text on the cursor's line, the model gave {ghost!r}"
    screen = plain.split("\n")
    row = next(i for i, line in enumerate(screen) if code + first in line)  # the code, then the ghost text
    cells = parse(ansi, W, H)[row]
    text = "".join(c.ch for c in cells)
    start = text.index(code + first) + len(code)
    ghost_fg = {colors(c)[0] for c in cells[start:start + len(first)] if c.ch.strip()}
    code_fg = {colors(c)[0] for c in cells[start - len(code):start] if c.ch.strip()}
    for more in ghost.split("\n")[1:]:  # the other lines of the suggestion, as virtual lines below
        if more.strip():
            assert any(line.rstrip().endswith(more.rstrip()) for line in screen[row + 1:]), (more, plain)

    def rgb(v: int) -> tuple[int, int, int]:
        return (v >> 16) & 255, (v >> 8) & 255, v & 255

    assert ghost_fg == {rgb(hint["fg"])}, (ghost_fg, hint)  # drawn in ComplHint's colour
    assert code_fg and not code_fg & ghost_fg  # the code is not
    if os.environ.get("SC2LSP_UPDATE_DOCS_IMG"):
        shutil.copy(ARTIFACTS / "nvim-ghost-text.png", PLUGIN.parents[1] / "docs" / "img" / "nvim-ghost-text.png")


STATUS = """
local c = vim.lsp.get_clients({ name = 'sc2lsp', bufnr = 0 })[1]
if not c or not c.initialized then return nil end
local r = c:request_sync('sc2lsp/status', vim.empty_dict(), 10000, 0)
return r and r.result or nil
"""
