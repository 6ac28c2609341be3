"""Bad input on disk that the scan cannot see coming: files deleted between the scan's listing and its
read, and files or folders the server's user may not read. Skipped with a reason, never a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sc2lsp.context.index import RepoIndex
from sc2lsp.workspace.indexer import index_workspace
from sc2lsp.workspace.scan import scan
from sc2lsp.workspace.watch import UPDATE, WorkspaceWatcher

ROOT = Path(__file__).resolve().parents[2]


def test_files_deleted_between_listing_and_read(tmp_path):
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / name).write_text(f"def {name[0]}_func():\n    pass\n")
    seen = {}
    for entry in scan(tmp_path):  # the folder is listed before the first file is read
        seen[entry.path] = entry.reason
        if entry.path == "a.py":
            (tmp_path / "b.py").unlink()
    assert seen["a.py"] is None and seen["c.py"] is None
    assert seen["b.py"].startswith("unreadable: No such file")


def test_index_survives_files_vanishing_during_the_scan(tmp_path):
    # 260 files: the indexer reports scan progress after 200, when the later ones are not read yet
    for i in range(260):
        (tmp_path / f"m{i:03d}.py").write_text(f"def f{i}():\n    return {i}\n")
    gone = [f"m{i:03d}.py" for i in range(230, 240)]

    def progress(stage, done, total):
        if stage == "scan" and done == 200:
            for name in gone:
                (tmp_path / name).unlink()

    idx = RepoIndex()
    report = index_workspace(idx, tmp_path, workers=1, progress=progress)
    assert report.files == len(idx) == 250
    assert report.skipped["unreadable"] == 10
    assert not any(p in idx for p in gone) and "m239.py" not in idx and "m240.py" in idx
    assert [d.name for d in idx.definitions_named("f240")] == ["f240"]


_AS_OTHER_USER = r"""
import json, os, sys
from sc2lsp.context.index import RepoIndex
from sc2lsp.workspace.indexer import index_workspace
from sc2lsp.workspace.watch import UPDATE, WorkspaceWatcher
root = sys.argv[1]
def run():
    idx = RepoIndex()
    report = index_workspace(idx, root, workers=1)
    w = WorkspaceWatcher(root, idx)  # driven by hand: the events a watcher would get for these files
    for rel in ("locked.py", "shut/inner.py", "good.py"):
        w.notify(rel, UPDATE)
    return idx, report, w.flush()
if os.geteuid() == 0:  # root reads everything: load every module first, then become nobody
    run()
    os.setgid(65534)
    os.setuid(65534)
idx, report, done = run()
print(json.dumps({"paths": list(idx.paths()), "skipped": dict(report.skipped), "flush": done}))
"""


def _run_unprivileged(root: Path) -> dict:
    """Index ``root`` as a user without rights to the locked parts (root reads everything, so
    when the tests run as root the child process becomes ``nobody`` before indexing)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _AS_OTHER_USER, str(root)], capture_output=True, text=True,
                         env=env, cwd=str(root), timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_permission_errors_are_skipped(tmp_path):
    # a world-readable folder (pytest's tmp_path is private to root) with parts only the owner reads
    root = Path(tempfile.mkdtemp(prefix="sc2lsp-perm-"))
    try:
        root.chmod(0o755)
        (root / "good.py").write_text("def good():\n    return 1\n")
        (root / "locked.py").write_text("def locked():\n    return 2\n")
        (root / "shut").mkdir()
        (root / "shut" / "inner.py").write_text("def inner():\n    return 3\n")
        for p in (root / "good.py", root / "locked.py", root / "shut" / "inner.py"):
            p.chmod(0o644)
        (root / "locked.py").chmod(0)
        (root / "shut").chmod(0)
        res = _run_unprivileged(root)
    finally:
        (root / "shut").chmod(0o755)
        (root / "locked.py").chmod(0o644)
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    assert res["paths"] == ["good.py"]
    assert res["skipped"] == {"unreadable": 1, "unreadable directory": 1}
    # the watcher's reads fail the same way: nothing indexed, nothing raised
    assert res["flush"] == {"locked.py": "skipped", "shut/inner.py": "skipped", "good.py": "update"}


def test_a_file_replaced_by_a_folder_leaves_the_index(tmp_path):
    idx = RepoIndex()
    (tmp_path / "a.py").write_text("def a():\n    pass\n")
    w = WorkspaceWatcher(tmp_path, idx)  # driven by hand: the events of one debounced batch
    w.notify("a.py", UPDATE)
    assert w.flush() == {"a.py": "update"} and "a.py" in idx
    # a checkout turns the module into a folder: "deleted" then "created (dir)" in one batch,
    # so the folder's event is the one kept for the path
    (tmp_path / "a.py").unlink()
    (tmp_path / "a.py").mkdir()
    (tmp_path / "a.py" / "b.py").write_text("def b():\n    pass\n")
    w.notify("a.py", "delete")
    w.notify("a.py", UPDATE, is_dir=True)
    assert w.flush() == {"a.py": "delete", "a.py/b.py": "update"}
    assert idx.paths() == ("a.py/b.py",) and idx.definitions_named("a") == ()


def test_a_large_document_is_indexed_off_the_request_path(tmp_path):
    import threading
    import time

    from sc2lsp.workspace.service import LARGE_CHANGE, WorkspaceContext

    (tmp_path / "small.py").write_text("def small():\n    pass\n")
    ws = WorkspaceContext(tmp_path, watch=False).start()
    assert ws.ready.wait(30)
    threads = {}
    apply = ws.index.apply_change

    def recording(path, text, language_id=None, **kw):
        threads[path] = threading.current_thread().name
        return apply(path, text, language_id, **kw)

    ws.index.apply_change = recording
    ws.did_change(str(tmp_path / "small.py"), "def small_v2():\n    pass\n")
    assert threads["small.py"] == threading.current_thread().name and ws.index.definitions_named("small_v2")
    big = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(LARGE_CHANGE // 30)) + "def marker():\n    pass\n"
    assert len(big) >= LARGE_CHANGE
    ws.did_change(str(tmp_path / "big.py"), big, "python")
    for _ in range(600):
        if ws.index.definitions_named("marker"):
            break
        time.sleep(0.05)
    assert [d.path for d in ws.index.definitions_named("marker")] == ["big.py"]
    assert threads["big.py"] == "sc2lsp-reindex"
    # a small text right after a large one of the same file goes the same way, so it is not
    # overtaken by the older large text
    ws.did_change(str(tmp_path / "big.py"), big.replace("marker", "marker_v2"), "python")
    ws.did_change(str(tmp_path / "big.py"), "def tiny():\n    pass\n", "python")
    for _ in range(600):
        if ws.index.definitions_named("tiny") and not ws._bg_busy:
            break
        time.sleep(0.05)
    assert ws.index.get("big.py").text == "def tiny():\n    pass\n" and not ws.index.definitions_named("marker_v2")
