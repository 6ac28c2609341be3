"""Ghost text in a real Neovim 0.12 from the real server and model, accepted with the plugin's mappings."""

from __future__ import annotations

import time

import pytest

from nvim_helpers import MODEL, OPTIONS, SERVER, Nvim, make_project, reference_suggestions, wait_for

pytestmark = pytest.mark.slow

# geometry.py positions (0-based line, character); sc2-tiny suggests several lines at both.
DEF = (11, 48)  # end of 'def distance(self, other: "Point") -> float:' (a suggestion starting on the next line)
FIELD = (8, 12)  # end of "    x: float" (a suggestion that goes on on this line, then more lines)


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict:
    """The server's suggestions at DEF and FIELD, from one plain stdio session (same settings, same root)."""
    proj = make_project(tmp_path_factory.mktemp("reference"))
    t0 = time.perf_counter()
    at_def, at_field = reference_suggestions(proj, "geometry.py", [DEF, FIELD])
    print(f"\nreference session: {time.perf_counter() - t0:.1f} s")
    return {DEF: at_def, FIELD: at_field}


def test_ghost_text_is_the_servers_suggestion_and_tab_accepts_it(tmp_path, expected):
    t0 = time.perf_counter()
    proj = make_project(tmp_path)
    path = proj / "geometry.py"
    text = path.read_text()
    expected = expected[DEF]
    assert expected.strip(), "the reference session suggested nothing at the test position"
    assert "\n" in expected, f"the test wants a multi-line suggestion here, the model gave {expected!r}"

    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=SERVER, settings=OPTIONS) is True
        nv.cmd(f"edit {path}")
        st = nv.wait_ready()
        assert st["model_path"].endswith(".gguf")
        nv.api.current.window.cursor = (DEF[0] + 1, 0)
        nv.input("A")  # insert mode at the end of the line: InsertEnter asks for an inline completion
        ghost = nv.wait_ghost()
        t_ghost = time.perf_counter()
        assert ghost == expected

        nv.input("<Tab>")  # the plugin's accept mapping
        lines = text.split("\n")
        line = lines[DEF[0]]
        offset = sum(len(x) + 1 for x in lines[: DEF[0]]) + len(line)
        want = text[:offset] + expected + text[offset:]
        wait_for(lambda: nv.buffer_text() == want, 10, "the accepted suggestion in the buffer")
        assert nv.mode() == "i"
        row, col = nv.api.current.window.cursor
        inserted = expected.split("\n")
        assert row == DEF[0] + len(inserted)  # cursor right after the inserted text
        assert col == (len(line) if len(inserted) == 1 else 0) + len(inserted[-1].encode())
        errors = [n["msg"] for n in nv.notes() if n["level"] >= 3]
        assert not errors, errors

        prompt = nv.lua("local c = vim.lsp.get_clients({name='sc2lsp', bufnr=0})[1]"
                        " return c:request_sync('sc2lsp/status', {prompt = true}, 10000, 0).result.last_prompt")
        assert prompt.startswith("<repo_name>proj<file_sep>"), prompt[:80]  # the folder's name, as the reference sent it

        nv.cmd("Sc2Status")
        st = wait_for(lambda: nv.lua("return require('sc2lsp').last_status"), 30, ":Sc2Status")
        shown = nv.note_texts()[-1].split("\n")
        assert shown[0].startswith("sc2lsp ") and f"model {MODEL}: ready ({st['model_path']})" in shown[0], shown
        assert shown[2].startswith("last suggestion: total ") and "from model" in shown[2], shown
        assert f"generate {st['last']['generate_ms']:.0f} ms ({st['last']['generated_tokens']} tokens)" in shown[2]
    print(f"\nnvim start to ghost text {t_ghost - t0:.1f} s")


def test_accept_line_takes_the_first_line_only(tmp_path, expected):
    proj = make_project(tmp_path)
    path = proj / "geometry.py"
    text = path.read_text()
    expected = expected[FIELD]
    first, sep, rest = expected.lstrip("\n").partition("\n")
    lead = expected[: len(expected) - len(expected.lstrip("\n"))]
    assert sep and rest, f"the test wants a suggestion of more than one line here, the model gave {expected!r}"
    piece = lead + first

    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=SERVER, settings=OPTIONS)
        nv.cmd(f"edit {path}")
        nv.wait_ready()
        nv.api.current.window.cursor = (FIELD[0] + 1, 0)
        nv.input("A")
        assert nv.wait_ghost() == expected
        nv.input("<C-l>")  # accept_line
        lines = text.split("\n")
        offset = sum(len(x) + 1 for x in lines[: FIELD[0]]) + len(lines[FIELD[0]])
        want = text[:offset] + piece + text[offset:]
        wait_for(lambda: nv.buffer_text() == want, 10, "the first line of the suggestion in the buffer")
        # <M-]> cycles through the candidates: the server sends one, so the next is the same one,
        # now shown with a "(1/1)" hint.
        nv.wait_ghost()
        nv.input("<M-]>")
        wait_for(lambda: "(1/1)" in nv.lua(HINTS), 10, "the candidate hint after <M-]>")


def test_completion_menu_fallback_inserts_the_whole_suggestion(tmp_path, expected):
    """inline = false (what Neovim < 0.12 gets): the suggestion is a completion item; accepting it inserts all lines."""
    proj = make_project(tmp_path)
    path = proj / "geometry.py"
    text = path.read_text()
    expected = expected[DEF]
    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=SERVER, settings=OPTIONS, inline=False)
        nv.cmd(f"edit {path}")
        nv.wait_ready()
        assert nv.wait_ready() and nv.lua("return vim.lsp.inline_completion.is_enabled({ bufnr = 0 })") is False
        nv.api.current.window.cursor = (DEF[0] + 1, 0)
        nv.input("A")
        wait_for(lambda: nv.mode() == "i", 5, "insert mode")
        nv.lua("vim.lsp.completion.get()")
        # headless there is no menu to draw (pumvisible() is 0), but the completion items are there
        items = wait_for(lambda: nv.api.call("complete_info", ["items"])["items"], 300, "the completion items")
        assert [i["menu"] for i in items] == ["[sc2lsp]"], items
        assert items[0]["info"] == expected
        assert nv.ghost() == ""  # no ghost text in this mode
        nv.input("<C-n><C-y>" if nv.api.call("complete_info", ["selected"])["selected"] < 0 else "<C-y>")
        lines = text.split("\n")
        offset = sum(len(x) + 1 for x in lines[: DEF[0]]) + len(lines[DEF[0]])
        want = text[:offset] + expected + text[offset:]
        wait_for(lambda: nv.buffer_text() == want, 10, "the whole suggestion in the buffer")


HINTS = """
local ns = vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
local out = {}
for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })) do
  for _, chunk in ipairs(m[4].virt_text or {}) do
    if chunk[2] == 'ComplHintMore' then table.insert(out, chunk[1]) end
  end
  for _, vl in ipairs(m[4].virt_lines or {}) do
    for _, chunk in ipairs(vl) do
      if chunk[2] == 'ComplHintMore' then table.insert(out, chunk[1]) end
    end
  end
end
return table.concat(out)
"""
