"""One workspace folder's repository context, wired for a server: index + initial scan + watcher.

    ws = WorkspaceContext("/path/to/repo").start()   # scan in the background, then watch
    ws.did_open(path, text, language_id)               # LSP didOpen (absolute path or file:// URI)
    ws.did_change(path, text); ws.did_close(path)      # didChange / didSave, didClose
    blocks = ws.blocks(path, text, offset, plan)       # BudgetPlan of the request -> ContextBlocks
    ws.refresh(path)                                   # when idle: gather afresh next time
    ws.stop()

Documents the editor has open win over the disk: the watcher's reads of an open file are
ignored until the editor closes it (the editor's text is newer than what is saved). Requests
before the initial scan finished get what is indexed so far.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ..context.gather import gather_context
from ..context.index import RepoIndex
from ..core.budget import BudgetPlan, approx_tokens
from .indexer import IndexReport, index_workspace
from .policy import FilePolicy
from .watch import WorkspaceWatcher

log = logging.getLogger(__name__)

#: Documents at least this long (characters) are indexed off the request path on a change.
LARGE_CHANGE = 128_000


class _EditorFirstIndex(RepoIndex):
    """A ``RepoIndex`` that ignores disk changes to documents open in the editor."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.editor_owned: set[str] = set()
        self.from_disk = threading.local()

    def apply_change(self, path, text, language_id=None):
        if getattr(self.from_disk, "on", False) and path in self.editor_owned:
            return False
        return super().apply_change(path, text, language_id)

    def apply_entry(self, entry):
        if getattr(self.from_disk, "on", False) and entry.path in self.editor_owned:
            return False
        return super().apply_entry(entry)


class _DiskWatcher(WorkspaceWatcher):
    def _apply(self, batch):
        self.index.from_disk.on = True
        try:
            return super()._apply(batch)
        finally:
            self.index.from_disk.on = False


class WorkspaceContext:
    def __init__(self, root: str | Path, *, watch: bool = True, workers: int | None = None):
        self.root = Path(os.path.realpath(root))
        self.index = _EditorFirstIndex()
        self.policy = FilePolicy([self.root])
        self.watch = watch
        self.workers = workers
        self.ready = threading.Event()  #: set when the initial scan is done
        self.report: IndexReport | None = None
        self._watcher: _DiskWatcher | None = None
        self._thread: threading.Thread | None = None
        self._sticky: dict[str, tuple[tuple, list]] = {}
        self._bg_lock = threading.Lock()
        self._bg_pending: dict[str, tuple[str, str | None]] = {}
        self._bg_thread: threading.Thread | None = None
        self._bg_busy: set[str] = set()  #: files with a change queued or being applied

    def start(self) -> "WorkspaceContext":
        self._thread = threading.Thread(target=self._scan, name="sc2lsp-index", daemon=True)
        self._thread.start()
        return self

    def _scan(self) -> None:
        try:
            if self.watch:  # watch first, so nothing written during the scan is missed
                self._watcher = _DiskWatcher(self.root, self.index).start()
            self.index.from_disk.on = True
            self.report = index_workspace(self.index, self.root, workers=self.workers)
        except Exception:
            log.warning("indexing %s failed", self.root, exc_info=True)
        finally:
            self.index.from_disk.on = False
            self.ready.set()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def rel(self, path_or_uri: str) -> str | None:
        """Workspace-relative ``/`` path of a file path or ``file://`` URI; None outside the root
        or when the file-access policy excludes the file (judged by its real path)."""
        v = self.policy.judge(path_or_uri)
        if v.root is None or v.reason is not None:
            return None
        return v.rel

    def did_open(self, path: str, text: str, language_id: str | None = None) -> None:
        rel = self.rel(path)
        if rel is not None:
            self.index.editor_owned.add(rel)
            self.index.apply_change(rel, text, language_id)
            self.index.open(rel)

    def did_change(self, path: str, text: str, language_id: str | None = None) -> None:
        """A small document is indexed at once; a large one (a full parse costs ~1 s per 700 KB)
        in a background thread, so the request that brought the change is not held up: until
        then requests work from the stale entry (its symbols, the request's own text)."""
        rel = self.rel(path)
        if rel is None:
            return
        with self._bg_lock:
            # a file with a change still queued or being applied stays on the queue, in order
            if len(text) >= LARGE_CHANGE or rel in self._bg_busy:
                self._bg_pending[rel] = (text, language_id)  # the newest text of a file wins
                self._bg_busy.add(rel)
                if self._bg_thread is None:
                    self._bg_thread = threading.Thread(target=self._apply_pending, name="sc2lsp-reindex", daemon=True)
                    self._bg_thread.start()
                return
        self.index.apply_change(rel, text, language_id)

    def _apply_pending(self) -> None:
        while True:
            with self._bg_lock:
                if not self._bg_pending:
                    self._bg_thread = None
                    return
                rel, (text, language_id) = self._bg_pending.popitem()
            try:
                self.index.apply_change(rel, text, language_id)
            except Exception:  # an index bug must not end the thread with work pending
                log.warning("indexing %s failed", rel, exc_info=True)
            with self._bg_lock:
                if rel not in self._bg_pending:
                    self._bg_busy.discard(rel)

    def did_close(self, path: str) -> None:
        rel = self.rel(path)
        if rel is not None:
            self.index.editor_owned.discard(rel)
            self.index.close(rel)
            if self._watcher is not None:
                self._watcher.notify(rel, "update")  # back to what is on disk

    def blocks(self, path: str, text: str, offset: int, plan: BudgetPlan, *, count=approx_tokens,
               language_id: str | None = None, sticky: bool = True):
        """Context blocks for a request whose prompt keeps ``plan``'s cut of the prefix/suffix.

        ``sticky``: while the cursor stays on one line (and the plan's cut and budget do not
        move), the blocks of the first request on that line are returned again, so typing only
        appends to the cached prompt; ``refresh(path)`` (e.g. when idle) forgets them.
        """
        rel = self.rel(path)
        if rel is None:
            return []
        key = (text.count("\n", 0, offset), plan.prefix_start, plan.suffix_end - len(text) + offset,
               plan.context_tokens)
        last = self._sticky.get(rel)
        if sticky and last is not None and last[0] == key:
            return last[1]
        window = (plan.prefix_start, offset + plan.suffix_end)
        blocks = gather_context(self.index, rel, text, offset, plan.context_tokens, count=count, window=window,
                                language_id=language_id)
        self._sticky[rel] = (key, blocks)
        return blocks

    def refresh(self, path: str) -> None:
        """Forget the sticky blocks of ``path`` (the next request gathers context again)."""
        rel = self.rel(path)
        if rel is not None:
            self._sticky.pop(rel, None)
