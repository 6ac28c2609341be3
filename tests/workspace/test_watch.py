"""The watchdog watcher keeps a real index current with real file system changes."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from sc2lsp.context.index import RepoIndex
from sc2lsp.workspace.indexer import index_workspace
from sc2lsp.workspace.watch import UPDATE, WorkspaceWatcher


def wait_for(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def names(idx: RepoIndex, name: str) -> list[str]:
    return [d.path for d in idx.definitions_named(name)]


@pytest.fixture
def watched(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("def alpha():\n    pass\n")
    (tmp_path / ".gitignore").write_text("build/\n")
    idx = RepoIndex()
    index_workspace(idx, tmp_path)
    batches: list[dict] = []
    w = WorkspaceWatcher(tmp_path, idx, on_batch=batches.append).start()
    time.sleep(0.1)  # let inotify set up its watches
    yield tmp_path, idx, w, batches
    w.stop()


def test_create_modify_delete_rename(watched):
    root, idx, _, _ = watched
    assert idx.paths() == ("pkg/a.py",)
    (root / "pkg" / "b.py").write_text("def beta():\n    pass\n")
    assert wait_for(lambda: names(idx, "beta") == ["pkg/b.py"])
    (root / "pkg" / "b.py").write_text("def gamma():\n    pass\n")
    assert wait_for(lambda: names(idx, "gamma") == ["pkg/b.py"]) and names(idx, "beta") == []
    os.rename(root / "pkg" / "b.py", root / "pkg" / "c.py")
    assert wait_for(lambda: names(idx, "gamma") == ["pkg/c.py"] and "pkg/b.py" not in idx)
    (root / "pkg" / "a.py").unlink()
    assert wait_for(lambda: "pkg/a.py" not in idx) and names(idx, "alpha") == []


def test_folders_moved_in_and_deleted(watched, tmp_path_factory):
    root, idx, _, _ = watched
    outside = tmp_path_factory.mktemp("outside")
    (outside / "lib").mkdir()
    (outside / "lib" / "x.go").write_text("package lib\nfunc X() {}\n")
    (outside / "lib" / "node_modules").mkdir()
    (outside / "lib" / "node_modules" / "dep.js").write_text("function dep() {}\n")
    shutil.move(str(outside / "lib"), str(root / "lib"))
    assert wait_for(lambda: "lib/x.go" in idx)
    assert "lib/node_modules/dep.js" not in idx
    shutil.rmtree(root / "lib")
    assert wait_for(lambda: "lib/x.go" not in idx)


def test_rules_of_the_scan_apply(watched, tmp_path_factory):
    root, idx, _, batches = watched
    (root / ".env").write_text("TOKEN=secret\n")
    (root / "secrets.yaml").write_text("password: hunter2\n")
    (root / "build").mkdir()
    (root / "build" / "gen.py").write_text("def generated():\n    pass\n")
    (root / "data.bin").write_bytes(b"\x00\x01\x02")
    (root / "bad.py").write_bytes(b"def f():\n    return '\xff\xfe'\n")
    outside = tmp_path_factory.mktemp("secret") / "real.py"
    outside.write_text("def leaked():\n    pass\n")
    (root / "link.py").symlink_to(outside)
    (root / "ok.py").write_text("def fine():\n    pass\n")  # written last: once it is in, the rest was seen
    assert wait_for(lambda: "ok.py" in idx)
    time.sleep(0.1)
    assert set(idx.paths()) == {"pkg/a.py", "ok.py"}
    assert names(idx, "leaked") == [] and names(idx, "generated") == []
    # a rule added to .gitignore takes an indexed file out
    (root / ".gitignore").write_text("build/\nok.py\n")
    assert wait_for(lambda: "ok.py" not in idx)
    # a file that turns minified leaves the index
    (root / "pkg" / "a.py").write_text("x=1;" * 3000)
    assert wait_for(lambda: "pkg/a.py" not in idx)


def test_debounce_coalesces_a_burst(watched):
    root, idx, w, batches = watched
    f = root / "pkg" / "hot.py"
    for i in range(30):
        f.write_text(f"def v{i}():\n    pass\n")
    assert wait_for(lambda: names(idx, "v29") == ["pkg/hot.py"])
    time.sleep(0.05)
    assert len(batches) < 30
    assert all(names(idx, f"v{i}") == [] for i in range(29))


def test_vanished_file_is_not_an_error(tmp_path):
    idx = RepoIndex()
    idx.apply_change("gone.py", "def f():\n    pass\n")
    w = WorkspaceWatcher(tmp_path, idx)  # not started: driven by hand, as didChangeWatchedFiles would
    w.notify("gone.py", UPDATE)  # the event came, the file was deleted before the read
    assert w.flush() == {"gone.py": "delete"} and "gone.py" not in idx
    w.notify("never.py", UPDATE)
    assert w.flush() == {"never.py": "skipped"}


def test_workspace_context_editor_text_wins_and_outside_edits_show_up(tmp_path):
    from sc2lsp.core.budget import plan_budget
    from sc2lsp.workspace.service import WorkspaceContext

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "main.py").write_text("x = 1\n")
    ws = WorkspaceContext(tmp_path).start()
    try:
        assert ws.ready.wait(10) and "pkg/main.py" in ws.index
        time.sleep(0.1)
        main = tmp_path / "pkg" / "main.py"
        edited = "from .util import shiny\n\nshiny(\n"  # unsaved editor text
        ws.did_open(main.as_uri(), edited, "python")
        main.write_text("x = 2\n")  # a save from somewhere else while the editor holds the file
        # codegen writes a new module outside the editor: it shows up without a restart
        (tmp_path / "pkg" / "util.py").write_text("def shiny(level: int) -> str:\n    return '*' * level\n")
        assert wait_for(lambda: "pkg/util.py" in ws.index)
        assert ws.index.get("pkg/main.py").text == edited
        plan = plan_budget(edited, "", 1536)
        blocks = ws.blocks(str(main), edited, len(edited), plan)
        assert [(b.provider, b.path) for b in blocks] == [("definitions", "pkg/util.py")]
        assert "def shiny(level: int) -> str:" in blocks[0].code
        ws.did_close(main.as_uri())
        assert wait_for(lambda: ws.index.get("pkg/main.py").text == "x = 2\n")
        assert ws.rel("/elsewhere/file.py") is None
    finally:
        ws.stop()


def test_workspace_context_blocks_stay_put_while_typing_on_one_line(tmp_path):
    from sc2lsp.core.budget import plan_budget
    from sc2lsp.workspace.service import WorkspaceContext

    (tmp_path / "a.py").write_text("def alpha(x):\n    return x\n")
    (tmp_path / "b.py").write_text("def beta(y):\n    return y\n")
    ws = WorkspaceContext(tmp_path, watch=False).start()
    assert ws.ready.wait(10)
    main = str(tmp_path / "m.py")
    head = "from a import alpha\nfrom b import beta\n\n"

    def ask(text):
        return ws.blocks(main, text, len(text), plan_budget(text, "", 1536))

    first = ask(head + "alpha(")
    assert [b.path for b in first] == ["a.py", "b.py"]  # alpha on the line, beta an unused import
    typed = ask(head + "alpha(be")
    assert typed is first  # same line: the same blocks, the prompt only grows at its end
    ws.refresh(main)
    assert ask(head + "alpha(be") == first  # gathered again: same result for the same names
    moved = ask(head + "alpha(beta(1))\nx = ")
    assert moved is not first


def test_a_closed_write_is_applied_without_waiting_for_quiet(tmp_path):
    """IN_CLOSE_WRITE says the write is complete: the save reaches the index at once, not after
    the debounce (here 5 s, so only the close event can bring it in time)."""
    idx = RepoIndex()
    with WorkspaceWatcher(tmp_path, idx, debounce_s=5.0, max_delay_s=10.0) as w:
        time.sleep(0.1)
        t = time.monotonic()
        (tmp_path / "saved.py").write_text("def saved():\n    pass\n")
        assert wait_for(lambda: names(idx, "saved") == ["saved.py"], timeout=2.0)
        assert time.monotonic() - t < 2.0 and w.batches >= 1
        w.notify("other.py", UPDATE)  # an event without a close (didChangeWatchedFiles) still waits
        time.sleep(0.3)
        assert w.batches == 1


def test_a_file_open_for_writing_is_read_once_it_is_closed(tmp_path):
    """Where closes are reported, a file being written is not read half-written after the debounce."""
    idx = RepoIndex()
    with WorkspaceWatcher(tmp_path, idx, debounce_s=0.005, max_delay_s=5.0) as w:
        time.sleep(0.1)
        (tmp_path / "first.py").write_text("def first():\n    pass\n")
        assert wait_for(lambda: names(idx, "first") == ["first.py"])
        with open(tmp_path / "slow.py", "w") as f:
            f.write("def half():\n")
            f.flush()
            time.sleep(0.3)  # 60x the debounce
            assert "slow.py" not in idx
            f.write("    pass\n")
        assert wait_for(lambda: names(idx, "half") == ["slow.py"])
        assert idx.get("slow.py").text == "def half():\n    pass\n" and w.batches == 2


def test_reading_files_sends_the_watcher_no_events(tmp_path):
    """The watcher asks only for the events it acts on: the scan's own reads (and a ``grep`` or
    ``git status`` in the folder) used to send it an open and a close-without-write per file,
    each decoded and dispatched in Python while the scan ran."""
    for i in range(40):
        (tmp_path / f"m{i}.py").write_text(f"def f{i}():\n    pass\n")
    idx = RepoIndex()
    seen: list[str] = []
    with WorkspaceWatcher(tmp_path, idx) as w:
        time.sleep(0.1)
        dispatch = w._handler.dispatch
        w._handler.dispatch = lambda event: (seen.append(event.event_type), dispatch(event))
        for i in range(40):
            (tmp_path / f"m{i}.py").read_bytes()
        index_workspace(RepoIndex(), tmp_path)  # a whole scan reads every file again
        (tmp_path / "last.py").write_text("def last():\n    pass\n")  # the events before it have arrived
        assert wait_for(lambda: names(idx, "last") == ["last.py"])
    assert seen and not {"opened", "closed_no_write"} & set(seen), seen
