"""``Workspaces`` (sc2lsp/workspace/workspaces.py): one mapping of a document to its workspace,
judged by the resolved target (symlinks), and flushing the editor's text into the index."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sc2lsp.workspace.paths import relative_path
from sc2lsp.workspace.service import WorkspaceContext
from sc2lsp.workspace.workspaces import Workspaces


class Recorder:
    """Stands in for a WorkspaceContext: records what the index is told."""

    def __init__(self, root: Path):
        self.root, self.calls = root, []
        self.ready = threading.Event()
        self.ready.set()

    def did_open(self, uri, text, lang):
        self.calls.append(("open", uri, text))

    def did_change(self, uri, text, lang):
        self.calls.append(("change", uri, text))

    def did_close(self, uri):
        self.calls.append(("close", uri))

    def blocks(self, uri, text, offset, plan, *, count, language_id):
        self.calls.append(("blocks", uri))
        return []

    def stop(self):
        self.calls.append(("stop",))


@pytest.fixture
def tree(tmp_path):
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "real.py").write_text("x = 1\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("y = 2\n")
    os.symlink(ws / "src" / "real.py", ws / "link.py")  # points inside the workspace
    os.symlink(outside / "secret.py", ws / "escape.py")  # points outside
    os.symlink(ws, tmp_path / "ws-link")  # the workspace opened through a symlinked directory
    return tmp_path


def test_a_symlink_maps_like_its_resolved_target(tree):
    ws = Workspaces()
    ws.set_folders([((tree / "ws").as_uri(), "proj")])
    assert ws.locate((tree / "ws" / "src" / "real.py").as_uri()) == ("src/real.py", "proj")
    assert ws.locate((tree / "ws" / "link.py").as_uri()) == ("src/real.py", "proj")
    # a link out of the workspace is not workspace code: not indexed, shown by its file name
    assert ws.folder_of((tree / "ws" / "escape.py").as_uri()) is None
    assert ws.locate((tree / "ws" / "escape.py").as_uri()) == ("escape.py", None)
    assert ws.locate("untitled:Untitled-1") == (None, None)
    # the index (WorkspaceContext.rel) and the file-access policy use the same mapping
    ctx = WorkspaceContext(tree / "ws", watch=False)
    for name in ("link.py", "escape.py", "src/real.py"):
        uri = (tree / "ws" / name).as_uri()
        found = ws.folder_of(uri)
        assert ctx.rel(uri) == (found[1] if found else None)
        assert ws.verdict(uri).rel == (found[1] if found else None)
    assert ws.locate("file://otherhost/ws/a.py") == (None, None)  # not a local file


def test_a_workspace_opened_through_a_symlinked_directory(tree):
    ws = Workspaces()
    ws.set_folders([(str(tree / "ws-link"), None)])
    assert ws.locate((tree / "ws-link" / "src" / "real.py").as_uri()) == ("src/real.py", "ws-link")
    assert ws.locate((tree / "ws" / "src" / "real.py").as_uri()) == ("src/real.py", "ws-link")
    assert ws.roots == [tree / "ws-link"]  # as the editor named it (attribution's exclude)


def test_nested_folders_pick_the_innermost(tree):
    ws = Workspaces()
    ws.set_folders([((tree / "ws").as_uri(), "outer"), ((tree / "ws" / "src").as_uri(), "inner")])
    assert ws.locate((tree / "ws" / "src" / "real.py").as_uri()) == ("real.py", "inner")
    assert relative_path(tree / "ws" / "src" / "real.py", (tree / "ws").resolve()) == "src/real.py"
    assert relative_path(tree / "ws..x" / "a.py", (tree / "ws").resolve()) is None


def test_changed_documents_reach_the_index_before_context(tree):
    docs = {}
    made = []

    def factory(root):
        made.append(Recorder(root))
        return made[-1]

    ws = Workspaces(lambda: [(u, t, "python") for u, t in docs.items()], context_factory=factory)
    ws.set_folders([((tree / "ws").as_uri(), "proj")])
    uri = (tree / "ws" / "src" / "real.py").as_uri()
    docs[uri] = "x = 1\n"
    ws.started = False
    ws.did_open(uri, docs[uri], "python")  # before `initialized`: no index is started
    assert made == []
    ws.started = True
    ws.did_change(uri)
    docs[uri] = "x = 2\n"

    class Cur:
        text, offset, language = "x = 2\n", 0, "python"

    Cur.uri = uri
    assert ws.context(Cur, plan=None, count=len) == []
    (rec,) = made
    # the document open before the index existed is opened first, then the change is flushed once
    assert rec.calls == [("open", uri, "x = 2\n"), ("change", uri, "x = 2\n"), ("blocks", uri)]
    ws.context(Cur, plan=None, count=len)
    assert [c[0] for c in rec.calls].count("change") == 1
    ws.did_close(uri)
    ws.stop()
    assert rec.calls[-2:] == [("close", uri), ("stop",)]


def test_disabled_or_home_is_never_indexed(tree, monkeypatch):
    made = []
    ws = Workspaces(context_factory=lambda root: made.append(root) or Recorder(root))
    ws.set_folders([((tree / "ws").as_uri(), "proj")])
    ws.enabled = False
    assert ws.context_for((tree / "ws" / "src" / "real.py").as_uri()) is None
    ws.enabled = True
    monkeypatch.setenv("HOME", str(tree / "ws"))
    assert ws.context_for((tree / "ws" / "src" / "real.py").as_uri()) is None
    assert made == []
