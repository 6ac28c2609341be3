"""Resource bounds of the workspace code: any folder depth, the index without a watcher, no watches
on skipped folders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sc2lsp.context.index import RepoIndex
from sc2lsp.workspace import watch as watch_mod
from sc2lsp.workspace.scan import scan
from sc2lsp.workspace.service import WorkspaceContext
from sc2lsp.workspace.watch import WorkspaceWatcher

DEPTH = 1100


def _deep_tree(root: Path) -> str:
    """A 1,100-level folder tree (``d/d/d/...``) with one Python file at the bottom."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(DEPTH):  # relative to an fd: no path ever gets longer than one name
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("deep.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b"def deepest_function():\n    return 1\n")
        os.close(wfd)
    finally:
        os.close(fd)
    return "/".join(["d"] * DEPTH) + "/deep.py"


def _remove_deep(root: Path) -> None:
    """Remove the deep tree bottom-up (shutil.rmtree recurses: pytest's own cleanup of old temporary
    folders would hit RecursionError on it)."""
    path = root / "d"
    stack = []
    while path.is_dir():
        stack.append(path)
        path = path / "d"
    for p in reversed(stack):
        for child in p.iterdir():
            if not child.is_dir():
                child.unlink()
        p.rmdir()


@pytest.fixture
def deep(tmp_path):
    rel = _deep_tree(tmp_path)
    yield rel
    _remove_deep(tmp_path)


def test_scan_and_index_a_1100_level_tree(tmp_path, deep):
    rel = deep
    (tmp_path / "top.py").write_text("x = 1\n")
    kept = [e.path for e in scan(tmp_path) if e.kept]
    assert kept == [rel, "top.py"]
    ws = WorkspaceContext(tmp_path, watch=False).start()
    assert ws.ready.wait(60)
    assert ws.report is not None and ws.report.files == 2
    w = WorkspaceWatcher(tmp_path, RepoIndex())
    assert w._walk("d") == [rel]  # a folder moved in is walked the same way


def test_initial_index_is_built_when_the_watcher_cannot_start(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("def alpha():\n    return 1\n")

    def fail(self):
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(WorkspaceWatcher, "start", fail)
    ws = WorkspaceContext(tmp_path).start()
    assert ws.ready.wait(30)
    assert ws.report is not None and ws.report.files == 1
    assert "inotify watch limit reached" in ws.watch_error


def test_skipped_folders_are_not_watched(tmp_path):
    for d in ["src/pkg", "node_modules/lib", ".git/objects", "docs", "web/node_modules/x", "web/app", "build/out"]:
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / ".gitignore").write_text("build/\n")
    w = WorkspaceWatcher(tmp_path, RepoIndex())
    seen: list[str] = []
    real_notify = w.notify
    w.notify = lambda rel, action, is_dir=False: (seen.append(rel), real_notify(rel, action, is_dir))
    w.start()
    try:
        plan = w.watched_folders()
        assert plan == {"": False, "docs": True, "src": True, "web": False, "web/app": True}
        (tmp_path / "node_modules" / "lib" / "x.js").write_text("x")
        (tmp_path / "build" / "out" / "y.py").write_text("y = 1\n")
        (tmp_path / "web" / "node_modules" / "x" / "z.js").write_text("z")
        (tmp_path / "src" / "pkg" / "a.py").write_text("a = 1\n")
        (tmp_path / "new").mkdir()  # a new folder under the root gets its own watch
        time.sleep(0.5)
        (tmp_path / "new" / "b.py").write_text("b = 1\n")
        for _ in range(100):
            if "new/b.py" in seen and "src/pkg/a.py" in seen:
                break
            time.sleep(0.05)
        assert "src/pkg/a.py" in seen and "new/b.py" in seen
        assert not [p for p in seen if "node_modules" in p or p.startswith("build/")]
    finally:
        w.stop()


def test_too_many_watches_fall_back_to_one(tmp_path, monkeypatch):
    monkeypatch.setattr(watch_mod, "MAX_WATCHES", 2)
    for d in ["a/node_modules", "b/node_modules", "c/node_modules"]:
        (tmp_path / d).mkdir(parents=True)
    assert WorkspaceWatcher(tmp_path, RepoIndex()).plan_watches() == [("", True)]
