"""The parsed-symbol cache: a restart parses nothing it parsed before, and a damaged entry is
ignored, never trusted."""

from __future__ import annotations

import pytest

from sc2lsp.context.index import RepoIndex
from sc2lsp.context.symbols import extract
from sc2lsp.workspace.indexer import cache_parsed, index_workspace, parse_pending
from sc2lsp.workspace.symbol_cache import SymbolCache, cache_key, decode, encode

FILES = {
    "pkg/util.py": "import os\n\ndef helper(x):\n    '''Help.'''\n    return x\n\nclass Box:\n    def open(self):\n        pass\n",
    "pkg/main.py": "from pkg.util import helper\n\nLIMIT = 3\n\ndef run():\n    return helper(LIMIT)\n",
    "lib/add.c": "#include <stdio.h>\nint add(int a, int b) { return a + b; }\n",
    "notes.md": "Some notes.\n",
}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "repo"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def snapshot(idx: RepoIndex) -> dict:
    return {p: idx.get(p).symbols for p in idx.paths()}


def test_a_restart_takes_symbols_from_the_cache_and_parses_nothing(tree, tmp_path, parses):
    cache = SymbolCache(tmp_path / "cache")
    first = RepoIndex()
    report = index_workspace(first, tree, workers=1, cache=cache)
    cache.flush()
    assert report.parsed == 4 and report.cached == 0 and len(parses) == 4 and cache.written == 3  # notes.md: no grammar
    expected = snapshot(first)
    parses.clear()
    again = RepoIndex()
    report = index_workspace(again, tree, workers=1, cache=SymbolCache(tmp_path / "cache"), lazy=True)
    assert report.cached == 3 and report.lazy == 1
    assert [d.path for d in again.definitions_named("helper")] == ["pkg/util.py"]
    assert snapshot(again) == expected
    assert parses == ["notes.md"]  # only the file the cache cannot hold (it has no grammar) was looked at


def test_a_changed_file_misses_the_cache(tree, tmp_path, parses):
    cache = SymbolCache(tmp_path / "cache")
    index_workspace(RepoIndex(), tree, workers=1, cache=cache)
    cache.flush()
    (tree / "pkg/util.py").write_text(FILES["pkg/util.py"].replace("helper", "assist"))
    parses.clear()
    idx = RepoIndex()
    index_workspace(idx, tree, workers=1, cache=SymbolCache(tmp_path / "cache"))
    assert sorted(parses) == ["notes.md", "pkg/util.py"]
    assert [d.path for d in idx.definitions_named("assist")] == ["pkg/util.py"] and not idx.definitions_named("helper")


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "other_key"])
def test_a_damaged_entry_is_ignored(tree, tmp_path, parses, damage):
    cache = SymbolCache(tmp_path / "cache")
    index_workspace(RepoIndex(), tree, workers=1, cache=cache)
    cache.flush()
    files = sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert len(files) == 3
    original = [f.read_bytes() for f in files]
    for i, f in enumerate(files):
        data = original[i]
        if damage == "flip":
            data = data[:-5] + bytes([data[-5] ^ 0x40]) + data[-4:]
        elif damage == "truncate":
            data = data[: len(data) // 2]
        elif damage == "garbage":
            data = data[:8] + b"\x00" * (len(data) - 8)
        else:  # a sound entry of another file under this name
            data = original[(i + 1) % len(files)]
        f.write_bytes(data)
    parses.clear()
    cache = SymbolCache(tmp_path / "cache")
    idx = RepoIndex()
    report = index_workspace(idx, tree, workers=1, cache=cache, lazy=True)
    assert report.cached == 0 and cache.hits == 0
    assert [d.path for d in idx.definitions_named("helper")] == ["pkg/util.py"]
    assert [d.path for d in idx.definitions_named("add")] == ["lib/add.c"]


def test_encode_decode_round_trip_and_key():
    text = FILES["pkg/util.py"]
    symbols = extract("pkg/util.py", text, "python")
    key = cache_key("pkg/util.py", "python", b"d" * 16)
    assert decode(encode(key, symbols), key, "pkg/util.py") == symbols
    assert decode(encode(key, symbols), cache_key("pkg/other.py", "python", b"d" * 16), "pkg/other.py") is None
    assert cache_key("a.py", "python", b"1" * 16) != cache_key("a.py", "python", b"2" * 16)


def test_background_parse_fills_the_cache(tree, tmp_path):
    cache = SymbolCache(tmp_path / "cache")
    idx = RepoIndex()
    report = index_workspace(idx, tree, workers=1, cache=cache, lazy=True)
    assert report.lazy == 4 and report.parsed == 0
    assert parse_pending(idx, workers=1, cache=cache) == 3  # notes.md has no grammar: nothing to parse
    cache.flush()
    assert cache.written == 3 and idx.unparsed() == [idx.get("notes.md")]
    assert [d.path for d in idx.definitions_named("helper")] == ["pkg/util.py"]
    assert not idx.get("pkg/main.py").parsed  # compact until something needs its symbols
    assert idx.get("pkg/main.py").symbols == extract("pkg/main.py", FILES["pkg/main.py"], "python")
    report = index_workspace(RepoIndex(), tree, workers=1, cache=SymbolCache(tmp_path / "cache"), lazy=True)
    assert report.cached == 3


def test_a_restarted_server_workspace_parses_nothing(tree, tmp_path, parses):
    from sc2lsp.workspace.service import WorkspaceContext

    ws = WorkspaceContext(tree, watch=False, workers=1, symbol_cache=SymbolCache(tmp_path / "cache")).start()
    assert ws.ready.wait(30) and ws.parsed_all.wait(30)
    assert ws.report.lazy == 4 and sorted(parses) == ["lib/add.c", "pkg/main.py", "pkg/util.py"]
    ws.did_open(str(tree / "pkg/main.py"), FILES["pkg/main.py"] + "\n# unsaved\n", "python")
    assert ws.wait_prepared(30)
    ws.symbol_cache.flush()
    ws.stop()
    parses.clear()
    ws = WorkspaceContext(tree, watch=False, workers=1, symbol_cache=SymbolCache(tmp_path / "cache")).start()
    assert ws.ready.wait(30) and ws.parsed_all.wait(30)
    assert ws.report.cached == 3 and parses == []
    assert [d.path for d in ws.index.definitions_named("helper")] == ["pkg/util.py"]
    ws.stop()


def test_background_parse_reads_files_itself_and_skips_changed_ones(tree, tmp_path):
    from sc2lsp.workspace.indexer import _encode_batch
    from sc2lsp.context.index import text_digest

    items = [("pkg/util.py", text_digest(FILES["pkg/util.py"])), ("pkg/main.py", text_digest("something else"))]
    out = _encode_batch(items, root=str(tree))
    assert [p for p, _, _ in out] == ["pkg/util.py"]  # main.py on disk is not the indexed text
