""":Sc2Attribution in a real Neovim against a real attribution index built in tmp (`sc2lsp attribution build`).

A function copied from an indexed corpus file is pasted into the buffer and checked as a line
range: the quickfix list must name the corpus file, and the copied span must be highlighted. Before
that, with nothing accepted, the plain command reports the server's error; after accepting a ghost
text suggestion, the plain command checks exactly the accepted text (the item's
``sc2lsp.suggestionAccepted`` command reached the server).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from nvim_helpers import OPTIONS, ROOT, SERVER, Nvim, make_project, wait_for

pytestmark = pytest.mark.slow

CORPUS_FILE = '''"""Vendored helpers."""


def merge_sorted_runs(runs, key=None):
    """Merge already sorted lists into one sorted list, keeping equal items in run order."""
    import heapq

    heap = []
    for index, run in enumerate(runs):
        iterator = iter(run)
        for first in iterator:
            heap.append(((key(first) if key else first), index, first, iterator))
            break
    heapq.heapify(heap)
    merged = []
    while heap:
        _, index, value, iterator = heap[0]
        merged.append(value)
        for value in iterator:
            heapq.heapreplace(heap, ((key(value) if key else value), index, value, iterator))
            break
        else:
            heapq.heappop(heap)
    return merged
'''

LAST = """
local a = require('sc2lsp').last_attribution
if a == nil then return nil end
return a
"""


def test_attribution_of_a_pasted_copy_names_the_source_file(tmp_path):
    corpus = tmp_path / "corpus" / "vendorlib"
    corpus.mkdir(parents=True)
    (corpus / "sorted_runs.py").write_text(CORPUS_FILE)
    index = tmp_path / "attr-index"
    subprocess.run([sys.executable, "-m", "sc2lsp.cli", "attribution", "build", str(tmp_path / "corpus"),
                    "--out", str(index), "--no-progress"], check=True, cwd=ROOT, capture_output=True)

    proj = make_project(tmp_path)
    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=SERVER, settings=dict(OPTIONS, attributionIndex=[str(index)]))
        nv.cmd(f"edit {proj / 'geometry.py'}")
        nv.wait_ready()

        # nothing accepted yet: the server's error, shown once
        nv.cmd("Sc2Attribution")
        err = wait_for(lambda: nv.lua(LAST), 30, "the attribution answer")
        assert "no suggestion accepted yet" in err["error"], err
        assert any("no suggestion accepted yet" in m for m in nv.note_texts())

        # accept a suggestion, then check it
        nv.lua("require('sc2lsp').last_attribution = nil vim.api.nvim_win_set_cursor(0, {14, 0})")
        nv.input("A")
        ghost = nv.wait_ghost()
        nv.input("<Tab>")
        wait_for(lambda: ghost in nv.buffer_text(), 10, "the accepted suggestion")
        nv.input("<Esc>")
        nv.cmd("Sc2Attribution")
        got = wait_for(lambda: nv.lua(LAST), 30, "the attribution of the accepted suggestion")
        assert "error" not in got, got
        assert got["text"] == ghost
        assert got["indexes"]

        # paste the copied function at the end and check those lines
        nv.lua("require('sc2lsp').last_attribution = nil")
        copied = CORPUS_FILE.split("\n")[3:26]
        n = len(nv.api.current.buffer)
        nv.api.current.buffer.append(copied)
        nv.cmd(f"{n + 1},{n + len(copied)}Sc2Attribution")
        res = wait_for(lambda: nv.lua(LAST), 60, "the attribution of the pasted lines")
        assert "error" not in res, res
        assert res["spans"], res
        span = max(res["spans"], key=lambda s: s["end"] - s["start"])
        assert span["end"] - span["start"] >= 200
        assert any(src["path"].endswith("sorted_runs.py") for src in span["sources"])

        qf = nv.lua("local out = {} for _, it in ipairs(vim.fn.getqflist()) do"
                    " table.insert(out, { name = vim.fn.bufname(it.bufnr), text = it.text, lnum = it.lnum }) end"
                    " return out")
        assert any(item["name"].endswith("sorted_runs.py") for item in qf), qf
        assert nv.lua("return vim.fn.getqflist({ title = 1 }).title") == "sc2lsp attribution"
        marks = nv.lua("return vim.api.nvim_buf_get_extmarks(0, require('sc2lsp').ns_attribution, 0, -1, {})")
        rows = {m[1] for m in marks}
        assert marks and all(n <= r < n + len(copied) for r in rows), (marks, n)
