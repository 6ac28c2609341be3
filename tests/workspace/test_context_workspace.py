"""Initial indexing of a real folder: the scan rules, bad input, worker processes."""

from __future__ import annotations

import os

import pytest

from sc2lsp.context.index import RepoIndex
from sc2lsp.workspace.indexer import index_workspace


def bad_tree(root):
    (root / "src").mkdir()
    (root / "src" / "good.py").write_text("def good():\n    return 1\n")
    (root / "src" / "latin1.py").write_bytes(b"def f():\n    return '\xe9t\xe9'\n")  # invalid UTF-8
    (root / "src" / "huge.min.js").write_text("var a=1;" * 700_000)  # 5.6 MB minified
    (root / "src" / "wide.js").write_text("var a=1;" * 10_000)  # minified, not named so
    depth = 5000
    (root / "src" / "deep.py").write_text("x = " + "(\n" * depth + "1" + "\n)" * depth + "\ndef after_deep():\n    pass\n")
    (root / "src" / "broken.py").write_text("def ok():\n    pass\ndef broken(:\n    pass\nclass Later:\n    pass\n")
    (root / "src" / "generated_pb2.py").write_text("def gen():\n    pass\n")
    (root / "src" / "secrets.yaml").write_text("password: x\n")
    (root / "src" / "id_rsa").write_text("-----BEGIN KEY-----\n")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "dep.js").write_text("function dep() {}\n")
    (root / "notes.md").write_text("Some notes on good().\n")
    os.symlink("/etc/hostname", root / "src" / "escape.py")


def test_bad_input_is_skipped_or_parsed_partially(tmp_path, caplog):
    bad_tree(tmp_path)
    idx = RepoIndex()
    seen = []
    with caplog.at_level("DEBUG", logger="sc2lsp"):
        report = index_workspace(idx, tmp_path, workers=1, progress=lambda *a: seen.append(a))
    assert set(idx.paths()) == {"src/good.py", "src/deep.py", "src/broken.py", "notes.md"}
    assert report.files == 4 and seen[-1] == ("parse", 4, 4)
    assert {d.name for d in idx.get("src/broken.py").definitions} >= {"ok", "Later"}
    assert idx.get("src/broken.py").symbols.errors == 1
    assert [d.name for d in idx.get("src/deep.py").definitions] == ["x", "after_deep"]
    assert idx.get("notes.md").language is None and "good" in idx.get("notes.md").symbols.identifiers
    reasons = set(report.skipped)
    assert {"binary or not UTF-8", "minified", "secret-bearing file", "generated or minified (by name)",
            "symlink pointing outside the workspace"} <= reasons
    assert any("skip src/latin1.py" in r.getMessage() for r in caplog.records)


def test_unreadable_file_is_skipped(tmp_path):
    (tmp_path / "a.py").write_text("def a():\n    pass\n")
    locked = tmp_path / "locked.py"
    locked.write_text("def locked():\n    pass\n")
    locked.chmod(0)
    try:
        readable = os.access(locked, os.R_OK)  # root reads anyway
        idx = RepoIndex()
        report = index_workspace(idx, tmp_path, workers=1)
    finally:
        locked.chmod(0o644)
    assert ("locked.py" in idx) == readable
    if not readable:
        assert report.skipped["unreadable"] == 1


@pytest.mark.slow
def test_worker_processes_give_the_same_index(tmp_path):
    for i in range(120):
        d = tmp_path / f"m{i % 7}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.py").write_text(f"from m0.f0 import f0\n\ndef f{i}(x):\n    '''Doc {i}.'''\n    return f0(x)\n")
        (d / f"g{i}.go").write_text(f"package m\n\nfunc G{i}() int {{ return {i} }}\n")
    one, two = RepoIndex(), RepoIndex()
    r1 = index_workspace(one, tmp_path, workers=1)
    r2 = index_workspace(two, tmp_path, workers=2)
    assert r2.workers == 2 and r1.files == r2.files == 240
    assert one.paths() == two.paths()
    for p in one.paths():
        assert one.get(p).symbols == two.get(p).symbols
