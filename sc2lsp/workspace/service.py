"""One workspace folder's repository context, wired for a server: index + initial scan + watcher.

    ws = WorkspaceContext("/path/to/repo").start()   # scan in the background, then watch
    ws.did_open(path, text, language_id)               # LSP didOpen (absolute path or file:// URI)
    ws.did_change(path, text); ws.did_close(path)      # didChange / didSave, didClose
    blocks = ws.blocks(path, text, offset, plan)       # BudgetPlan of the request -> ContextBlocks
    blocks = ws.blocks(..., complete=True)             # a warm-up: waits for the index, no time budgets
    ws.refresh(path)                                   # when idle: gather afresh next time
    ws.stop()

Documents the editor has open win over the disk: the watcher's reads of an open file are
ignored until the editor closes it (the editor's text is newer than what is saved). Requests
before the initial scan finished get what is indexed so far.

Nothing a request needs is left for the first request: once the scan is done the tags queries
of the indexed languages are compiled, and every opened document is prepared in the background
(``gather.prepare``: its imports resolved, the name tables of the files they point at built,
their definitions rendered and counted with ``self.count``, the server's token counter).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from ..context.gather import assemble, complete_options, prepare
from ..context.index import RepoIndex
from ..context.languages import tags_query
from ..core.budget import BudgetPlan, approx_tokens
from .indexer import IndexReport, cache_parsed, index_workspace, parse_pending
from .paths import relative_path
from .policy import FilePolicy
from .symbol_cache import SymbolCache
from .watch import WorkspaceWatcher

log = logging.getLogger(__name__)

#: Documents at least this long (characters) are indexed off the request path on a change.
LARGE_CHANGE = 128_000
#: The longest a complete gathering (a warm-up) waits for the initial scan.
READY_WAIT_S = 120.0
#: The longest a request waits for the preparation of its document when that is under way (a
#: first request evaluates its whole prompt: hundreds of milliseconds at least).
PREPARE_WAIT_S = 0.5


class _EditorFirstIndex(RepoIndex):
    """A ``RepoIndex`` that ignores disk changes to documents open in the editor."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.editor_owned: set[str] = set()
        self.from_disk = threading.local()

    def apply_change(self, path, text, language_id=None, **kw):
        if getattr(self.from_disk, "on", False) and path in self.editor_owned:
            return False
        return super().apply_change(path, text, language_id, **kw)

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
    def __init__(self, root: str | Path, *, watch: bool = True, workers: int | None = None,
                 symbol_cache: SymbolCache | None | bool = True):
        self.root = Path(os.path.realpath(root))
        self.index = _EditorFirstIndex()
        #: parsed symbols kept across restarts (``True``: the user's cache folder; ``False``/None: none)
        self.symbol_cache = SymbolCache() if symbol_cache is True else (symbol_cache or None)
        if self.symbol_cache is not None:
            cache_parsed(self.index, self.symbol_cache, skip=self.index.editor_owned.__contains__)
        self.parsed_all = threading.Event()  #: set when every file indexed by the scan has its symbols
        self.policy = FilePolicy([self.root])
        self.watch = watch
        self.workers = workers
        self.ready = threading.Event()  #: set when the initial scan is done
        self.report: IndexReport | None = None
        self.index_seconds: float | None = None  #: start to ready: watcher started and folder scanned
        self._watcher: _DiskWatcher | None = None
        #: why the folder is not watched for changes (the watcher failed to start), or None
        self.watch_error: str | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._sticky: dict[str, tuple[tuple, list]] = {}
        self._bg_lock = threading.Lock()
        self._bg_pending: dict[str, tuple[str, str | None]] = {}
        self._bg_thread: threading.Thread | None = None
        self._bg_busy: set[str] = set()  #: files with a change queued or being applied
        self.count = approx_tokens  #: the token counter requests use (the server sets the model's)
        self._prep_lock = threading.Condition()
        self._prep_queue: dict[str, None] = {}
        self._prep_current: str | None = None
        self._prep_thread: threading.Thread | None = None
        self.prepared: dict[str, dict] = {}  #: path -> what ``gather.prepare`` did (for status and tests)

    def start(self) -> "WorkspaceContext":
        self._thread = threading.Thread(target=self._scan, name="sc2lsp-index", daemon=True)
        self._thread.start()
        return self

    def _scan(self) -> None:
        t0 = time.perf_counter()
        if self.watch:  # watch first, so nothing written during the scan is missed
            try:
                self._watcher = _DiskWatcher(self.root, self.index).start()
            except Exception as e:  # inotify limits, a file system without events: index all the same
                self._watcher = None
                self.watch_error = f"{type(e).__name__}: {e}"
                log.warning("not watching %s (%s): the index is built once and not kept current",
                            self.root, self.watch_error)
        if self._stopped and self._watcher is not None:  # stopped while the watcher started
            self._watcher.stop()
            self._watcher = None
        watched = time.perf_counter()
        try:
            self.index.from_disk.on = True
            # nothing parsed here: symbols come from the cache or from a parse when first needed
            self.report = index_workspace(self.index, self.root, workers=self.workers, cache=self.symbol_cache,
                                          lazy=True)
            for language in self.index.languages():
                if language != "text":
                    tags_query(language)  # compiled here, not on the first request
            r = self.report
            self.index_seconds = time.perf_counter() - t0
            log.info("indexed %s: %d files in %.2f s (watcher %.2f s, scan %.2f s), %d cached, %d to parse",
                     self.root, r.files, self.index_seconds, watched - t0, r.scan_seconds, r.cached, r.lazy)
        except Exception:
            log.warning("indexing %s failed", self.root, exc_info=True)
        finally:
            self.index.from_disk.on = False
            self.ready.set()
        self._parse_rest()

    def _parse_rest(self) -> None:
        """After the index is ready: parse what the cache did not have, off the request path (in
        worker processes for large workspaces), so that name lookups find parsed files and the
        next start finds everything in the cache."""
        try:
            parse_pending(self.index, workers=self.workers, cache=self.symbol_cache, stop=lambda: self._stopped,
                          root=self.root)
        except Exception:
            log.warning("parsing %s failed", self.root, exc_info=True)
        finally:
            self.parsed_all.set()

    def stop(self) -> None:
        self._stopped = True
        if self._watcher is not None:
            self._watcher.stop()
        self.ready.set()  # a warm-up waiting for the scan must not hold the server's exit

    def rel(self, path_or_uri: str) -> str | None:
        """Workspace-relative ``/`` path of a file path or ``file://`` URI; None outside the root
        (``paths.relative_path``: judged by the resolved target), or None when the file-access
        policy excludes it (``policy.FilePolicy``: secret, ignored, vendored)."""
        rel = relative_path(path_or_uri, self.root)
        if rel is None or self.policy.reason(self.root, rel) is not None:
            return None
        return rel

    def did_open(self, path: str, text: str, language_id: str | None = None) -> None:
        rel = self.rel(path)
        if rel is not None:
            self.index.editor_owned.add(rel)
            self.index.apply_change(rel, text, language_id)
            self.index.open(rel)
            self.prepare(rel)

    def prepare(self, rel: str) -> None:
        """Prepare the indexed file ``rel`` for its first request, in the background, once the
        scan is done (``gather.prepare``)."""
        with self._prep_lock:
            self._prep_queue[rel] = None
            if self._prep_thread is None:
                self._prep_thread = threading.Thread(target=self._prepare_pending, name="sc2lsp-prepare", daemon=True)
                self._prep_thread.start()

    def _prepare_pending(self) -> None:
        self.ready.wait(READY_WAIT_S)
        while True:
            with self._prep_lock:
                self._prep_current = None
                self._prep_lock.notify_all()
                if not self._prep_queue:
                    self._prep_thread = None
                    return
                rel = self._prep_current = next(iter(self._prep_queue))
                del self._prep_queue[rel]
            try:
                self.prepared[rel] = prepare(self.index, rel, count=self.count)
                log.info("prepared %s: %s", rel, self.prepared[rel])
            except Exception:  # preparing is an optimisation: never let it end the thread
                if self._stopped:  # the server is exiting (its thread pools refuse work): not a failure
                    log.debug("preparing %s stopped by the shutdown", rel, exc_info=True)
                else:
                    log.warning("preparing %s failed", rel, exc_info=True)

    def _wait_for_preparation(self, rel: str, timeout: float) -> None:
        with self._prep_lock:
            self._prep_lock.wait_for(lambda: rel != self._prep_current and rel not in self._prep_queue, timeout)

    def settled(self, path: str) -> bool:
        """Whether the scan is done and the document ``path`` is not waiting for its preparation."""
        rel = self.rel(path)
        return self.ready.is_set() and (rel is None or (rel != self._prep_current and rel not in self._prep_queue))

    def wait_settled(self, path: str, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until ``settled(path)``: what a document's first
        request does, as it evaluates its whole prompt anyway."""
        end = time.monotonic() + timeout
        if not self.ready.wait(timeout):
            return False
        rel = self.rel(path)
        if rel is not None:
            self._wait_for_preparation(rel, max(0.0, end - time.monotonic()))
        return self.settled(path)

    def wait_prepared(self, timeout: float = 10.0) -> bool:
        """Wait until the documents opened so far are prepared (tests, benchmarks)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._prep_lock:
                if self._prep_thread is None and self.ready.is_set():
                    return True
            time.sleep(0.005)
        return False

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
        self.index.apply_change(rel, text, language_id, lazy=True)  # parsed when a gathering needs it

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
               language_id: str | None = None, sticky: bool = True, complete: bool = False):
        """Context blocks for a request whose prompt keeps ``plan``'s cut of the prefix/suffix.

        ``sticky``: while the cursor stays on one line (and the plan's cut and budget do not
        move), the blocks of the first request on that line are returned again, so typing only
        appends to the cached prompt; ``refresh(path)`` (e.g. when idle) forgets them.
        ``complete``: gathered afresh with no provider time budgets, after waiting for the initial
        scan (None if it is not done in ``READY_WAIT_S``): what a warm-up and ``sc2lsp context`` use.
        """
        rel = self.rel(path)
        if rel is None:
            return []
        self.count = count
        if complete and not self.ready.wait(READY_WAIT_S):
            return None
        if self.ready.is_set():
            self._wait_for_preparation(rel, READY_WAIT_S if complete else PREPARE_WAIT_S)
        key = (text.count("\n", 0, offset), plan.prefix_start, plan.suffix_end - len(text) + offset,
               plan.context_tokens)
        last = self._sticky.get(rel)
        if sticky and not complete and last is not None and last[0] == key:
            return last[1]
        window = (plan.prefix_start, offset + plan.suffix_end)
        entry = self.index.get(rel)
        if entry is not None and entry.text == text:
            entry.symbols  # parsed once here, not by each provider thread at the same time
        res = assemble(self.index, rel, text, offset, plan.context_tokens, count=count, window=window,
                       language_id=language_id, options=complete_options() if complete else None)
        if not res.skipped or complete:  # a gathering that skipped a provider is not kept
            self._sticky[rel] = (key, res.blocks)
        else:
            self._sticky.pop(rel, None)
        return res.blocks

    def refresh(self, path: str) -> None:
        """Forget the sticky blocks of ``path`` (the next request gathers context again)."""
        rel = self.rel(path)
        if rel is not None:
            self._sticky.pop(rel, None)
