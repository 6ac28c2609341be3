"""The pure repository index: fed changes, never reads the disk."""

from __future__ import annotations

import threading

from sc2lsp.context.index import RepoIndex

UTIL = "def helper(x):\n    return x\n\nclass Box:\n    def open(self):\n        pass\n"


def names(index: RepoIndex, name: str) -> list[str]:
    return [d.path for d in index.definitions_named(name)]


def test_apply_change_replaces_and_remove_forgets():
    idx = RepoIndex()
    assert idx.apply_change("pkg/util.py", UTIL)
    assert not idx.apply_change("pkg/util.py", UTIL)  # same text: nothing to do
    assert names(idx, "helper") == ["pkg/util.py"] and names(idx, "open") == ["pkg/util.py"]
    idx.apply_change("pkg/util.py", UTIL.replace("helper", "assist"))
    assert names(idx, "helper") == [] and names(idx, "assist") == ["pkg/util.py"]
    assert idx.remove("pkg/util.py") and not idx.remove("pkg/util.py")
    assert names(idx, "assist") == [] and len(idx) == 0 and idx.files_named("util.py") == ()


def test_rename_is_remove_plus_change():
    idx = RepoIndex()
    idx.apply_change("a/old.py", UTIL)
    idx.remove("a/old.py")
    idx.apply_change("b/new.py", UTIL)
    assert names(idx, "helper") == ["b/new.py"] and idx.files_in_dir("a") == () and idx.files_in_dir("b") == ("b/new.py",)


def test_remove_tree():
    idx = RepoIndex()
    for p in ("src/a.py", "src/sub/b.py", "srcx/c.py"):
        idx.apply_change(p, UTIL)
    assert idx.remove_tree("src") == 2
    assert idx.paths() == ("srcx/c.py",)


def test_rejects_large_and_minified_text_and_drops_the_old_entry():
    idx = RepoIndex(max_bytes=10_000)
    idx.apply_change("big.js", "function f() {}\n")
    assert not idx.apply_change("big.js", "x" * 10_001)
    assert "big.js" not in idx
    minified = "var a=1;" * 1000  # one 8,000-character line
    assert not idx.apply_change("app.js", minified) and "app.js" not in idx


def test_recent_edits_are_line_ranges_of_the_new_text():
    idx = RepoIndex()
    text = "".join(f"line{i}\n" for i in range(50))
    idx.apply_change("f.py", text)
    assert idx.recent_edits() == ()  # the first text is not an edit
    idx.apply_change("f.py", text.replace("line10\n", "changed10\n"))
    (e,) = idx.recent_edits()
    assert (e.path, e.start, e.end) == ("f.py", 10, 10)
    idx.apply_change("f.py", text.replace("line10\n", "changed10\nline10b\n"))  # next to it: coalesced
    (e,) = idx.recent_edits()
    assert (e.start, e.end) == (10, 11)
    idx.apply_change("g.py", "x = 1\n")
    idx.apply_change("g.py", "x = 2\n")
    assert [x.path for x in idx.recent_edits()] == ["g.py", "f.py"]
    idx.remove("f.py")
    assert [x.path for x in idx.recent_edits()] == ["g.py"]


def test_open_and_recent_files():
    idx = RepoIndex(recent_files=2)
    for p in ("a.py", "b.py", "c.py", "d.py"):
        idx.apply_change(p, "x = 1\n")
    idx.open("a.py")
    idx.touch("b.py")
    idx.touch("c.py")
    idx.touch("d.py")
    assert idx.recent_files() == ("a.py", "d.py", "c.py")  # open first, then the two most recent
    idx.close("a.py")
    assert idx.recent_files() == ("d.py", "c.py")


def test_concurrent_changes_keep_the_tables_consistent():
    idx = RepoIndex()

    def writer(k: int) -> None:
        for i in range(60):
            idx.apply_change(f"w{k}/f{i % 7}.py", UTIL.replace("helper", f"helper{i % 3}"))
            if i % 5 == 0:
                idx.remove(f"w{k}/f{(i + 3) % 7}.py")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("helper0", "helper1", "helper2", "open"):
        for d in idx.definitions_named(name):
            entry = idx.get(d.path)
            assert entry is not None and d in entry.definitions
    expected = sum(1 for p in idx.paths() for d in idx.get(p).definitions if d.name == "open")
    assert len(idx.definitions_named("open")) == expected


def test_stats():
    idx = RepoIndex()
    idx.apply_change("a.py", UTIL)
    idx.apply_change("b.go", "package b\nfunc F() {}\n")
    idx.apply_change("notes.md", "hello\n")
    s = idx.stats()
    assert s["files"] == 3 and s["languages"] == {"go": 1, "python": 1, "text": 1}
    assert s["definitions"] == 4
