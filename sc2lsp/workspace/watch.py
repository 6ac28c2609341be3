"""Keep a ``RepoIndex`` current with changes made outside the editor (git checkout, codegen, ...).

``WorkspaceWatcher(root, index).start()`` runs a watchdog observer on ``root``. Events are
collected per path and applied after ``debounce_s`` of quiet (at most ``max_delay_s`` after the
first one), so a burst (a checkout writing hundreds of files) becomes one batch and a file
written several times is read once. For each path:

* deleted, or moved away: ``index.remove`` (a folder: ``index.remove_tree``);
* created, modified, moved in: read and judged by the scan rules (``scan.classify``: ignore
  files, secrets, vendored, binary, minified, generated, size); kept -> ``index.apply_change``,
  otherwise removed (a file that became binary or ignored disappears too);
* a folder created or moved in: walked with the same rules (no symlinked folders followed);
* a changed ``.gitignore``/``.sc2lspignore``: the rules are read again and files they now
  ignore leave the index.

Unreadable files (deleted between event and read, permissions) are removed from the index and
logged at debug level; nothing here raises into the observer thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileClosedEvent, FileCreatedEvent,
                             FileDeletedEvent, FileModifiedEvent, FileMovedEvent, FileSystemEventHandler)

from ..context.index import RepoIndex
from .indexer import wanted
from .scan import MAX_BYTES, IgnoreRules, classify, path_reason

log = logging.getLogger(__name__)

UPDATE, DELETE = "update", "delete"
#: At most this many watches (each one inotify instance; Linux allows 128 per user by default).
MAX_WATCHES = 48
#: The events the watcher acts on. Asked of the observer, so the kernel does not report the others:
#: without it inotify reports every open and read-only close, and the scan's own reads (two events
#: per file, each decoded and dispatched in Python) slowed the initial scan of an 8,577-file
#: workspace from 1.3 s to 2.3 s; every ``git status`` or ``grep`` in the folder did the same.
EVENTS = [FileCreatedEvent, DirCreatedEvent, FileDeletedEvent, DirDeletedEvent, FileModifiedEvent,
          FileMovedEvent, DirMovedEvent, FileClosedEvent]


class WorkspaceWatcher:
    def __init__(self, root: str | Path, index: RepoIndex, *, debounce_s: float = 0.005, max_delay_s: float = 0.2,
                 max_bytes: int = MAX_BYTES, on_batch: Callable[[dict[str, str]], None] | None = None):
        self.root = self.real_root = Path(os.path.realpath(root))
        self.index = index
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self.max_bytes = max_bytes
        self.on_batch = on_batch  #: called with {path: "update"|"delete"} after each applied batch
        self._pending: dict[str, tuple[str, bool]] = {}  # rel path -> (action, is_dir)
        self._first = self._last = 0.0
        self._written = False  #: a pending file was closed after writing: apply now
        self._closes_seen = False  #: the system reports closed writes (Linux inotify)
        self._open_writes: set[str] = set()  #: pending files written and not closed yet
        self._cond = threading.Condition()
        self._stopping = False
        self._observer = None
        self._handler = None
        self._watched: dict[str, bool] = {}  #: folder -> recursive watch
        self._worker: threading.Thread | None = None
        self._rules: IgnoreRules | None = None
        self._rules_dirs: set[str] = set()
        self.batches = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "WorkspaceWatcher":
        from watchdog.observers import Observer

        self._worker = threading.Thread(target=self._run, name="sc2lsp-watch-apply", daemon=True)
        self._worker.start()
        self._observer = Observer()
        self._handler = _Handler(self)
        self._observer.daemon = True
        try:
            for rel, recursive in self.plan_watches():
                self._schedule(rel, recursive)
            self._observer.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _skipped_dir(self, rel: str) -> bool:
        return bool(self._skip_reason(rel + "/x") or path_reason(rel, self._ignore_rules(rel + "/x"), is_dir=True))

    def plan_watches(self) -> list[tuple[str, bool]]:
        """(folder, recursive) watches that cover every kept folder and no skipped one.

        A folder with no skipped folder below it gets one recursive watch; a folder holding a
        skipped one (``.git``, ``node_modules``, an ignored tree) is watched on its own and its
        kept sub-folders are planned the same way. Walked with an explicit stack. More than
        ``MAX_WATCHES`` watches (each is an inotify instance): one recursive watch on the root.
        """
        children: dict[str, list[str]] = {}
        holds_skipped: set[str] = set()
        stack = [""]
        while stack:
            rel = stack.pop()
            kids = children[rel] = []
            try:
                entries = list(os.scandir(self.real_root / rel if rel else self.real_root))
            except OSError:
                continue
            for e in entries:
                try:
                    if not e.is_dir(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                sub = f"{rel}/{e.name}" if rel else e.name
                # the walk never enters a skipped folder, so only ``sub`` itself is judged here
                # (``_skipped_dir`` judges every ancestor too: 4-6x the rule matching on a deep tree)
                if path_reason(sub, self._ignore_rules(sub + "/x"), is_dir=True):
                    up = rel
                    while up not in holds_skipped:  # this folder and its ancestors hold a skipped one
                        holds_skipped.add(up)
                        if not up:
                            break
                        up = up.rsplit("/", 1)[0] if "/" in up else ""
                else:
                    kids.append(sub)
                    stack.append(sub)
        plan, todo = [], [""]
        while todo:
            rel = todo.pop()
            if rel in holds_skipped:
                plan.append((rel, False))
                todo.extend(children.get(rel, ()))
            else:
                plan.append((rel, True))
        if len(plan) > MAX_WATCHES:
            log.info("watching %s recursively: %d separate watches would be needed", self.real_root, len(plan))
            return [("", True)]
        return sorted(plan)

    def _schedule(self, rel: str, recursive: bool) -> None:
        full = self.real_root / rel if rel else self.real_root
        try:
            self._observer.schedule(self._handler, str(full), recursive=recursive, event_filter=EVENTS)
        except TypeError:  # a watchdog without event filters (before 4.0): every event, the handler filters
            self._observer.schedule(self._handler, str(full), recursive=recursive)
        self._watched[rel] = recursive

    def _watch_new_folder(self, rel: str) -> None:
        """A folder created (or moved in) under a folder watched on its own gets its watch."""
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        covered = any(rec and (w == "" or rel.startswith(w + "/")) for w, rec in self._watched.items())
        if covered or self._watched.get(parent) is not False or self._skipped_dir(rel):
            return
        self._schedule(rel, True)

    def watched_folders(self) -> dict[str, bool]:
        """folder ("" = the root) -> recursive: tests and status."""
        return dict(self._watched)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5)
            self._worker = None

    def __enter__(self) -> "WorkspaceWatcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- events ---------------------------------------------------------------------------------

    def relative(self, path: str | bytes) -> str | None:
        """Workspace-relative ``/`` path of an event path, None when outside the root."""
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        try:
            rel = os.path.relpath(path, self.real_root)
        except ValueError:
            return None
        if rel == "." or rel.startswith(".."):
            return None
        return rel.replace(os.sep, "/")

    def notify(self, rel: str, action: str, is_dir: bool = False, *, written: bool = False) -> None:
        """Record a change (also usable for LSP ``workspace/didChangeWatchedFiles``). ``written``:
        a writer closed the file (inotify's IN_CLOSE_WRITE): the batch is applied without waiting
        for quiet, as the write is complete."""
        if any(part in (".git", ".hg", ".svn") for part in rel.split("/")):
            return  # version-control internals change on every git command
        now = time.monotonic()
        with self._cond:
            if not self._pending:
                self._first = now
            self._pending[rel] = (action, is_dir)
            self._last = now
            if written:
                self._written = self._closes_seen = True
                self._open_writes.discard(rel)
            elif action == UPDATE and not is_dir:
                self._open_writes.add(rel)
            else:
                self._open_writes.discard(rel)
            self._cond.notify_all()

    def flush(self) -> dict[str, str]:
        """Apply the pending changes now (tests, shutdown)."""
        with self._cond:
            batch, self._pending = self._pending, {}
        return self._apply(batch)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                while True:  # wait for quiet, but not longer than max_delay_s
                    now = time.monotonic()
                    wait = self._wait(now)
                    if wait <= 0 or self._stopping:
                        break
                    self._cond.wait(wait)
                batch, self._pending, self._written = self._pending, {}, False
                self._open_writes.clear()
            try:
                self._apply(batch)
            except Exception:  # the watcher must survive anything a file system does
                log.debug("watch batch failed", exc_info=True)

    def _wait(self, now: float) -> float:
        """How long the pending batch waits: until ``debounce_s`` of quiet, at most ``max_delay_s``
        after its first event; where the system reports closed writes (inotify), not at all once
        every file written is closed again, and until then (no half-written file is read)."""
        if self._closes_seen and self._open_writes:
            return self._first + self.max_delay_s - now
        if self._written:
            return 0.0
        return min(self._last + self.debounce_s, self._first + self.max_delay_s) - now

    # -- applying -------------------------------------------------------------------------------

    def _ignore_rules(self, rel: str) -> IgnoreRules:
        """Ignore files of ``rel``'s ancestor folders, read once each."""
        if self._rules is None:
            self._rules, self._rules_dirs = IgnoreRules(), set()
        parts = rel.split("/")[:-1]
        for depth in range(len(parts) + 1):
            d = "/".join(parts[:depth])
            if d in self._rules_dirs:
                continue
            self._rules_dirs.add(d)
            for source in IgnoreRules.SOURCES:
                f = self.root / d / source
                try:
                    lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
                except OSError:
                    continue
                self._rules.add(d, lines, source)
        return self._rules

    def _skip_reason(self, rel: str) -> str | None:
        rules = self._ignore_rules(rel)
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            reason = path_reason("/".join(parts[:depth]), rules, is_dir=True)
            if reason:
                return reason
        return None

    def _apply(self, batch: dict[str, tuple[str, bool]]) -> dict[str, str]:
        done: dict[str, str] = {}
        if any(rel.rsplit("/", 1)[-1] in IgnoreRules.SOURCES for rel in batch):
            self._rules = None  # read the ignore files again
            for path in self.index.paths():
                if self._skip_reason(path) or path_reason(path, self._ignore_rules(path)):
                    self.index.remove(path)
                    done[path] = DELETE
        for rel, (action, is_dir) in sorted(batch.items()):
            if action == DELETE:
                removed = self.index.remove(rel) + self.index.remove_tree(rel)
                if removed:
                    done[rel] = DELETE
                continue
            full = self.root / rel
            try:
                is_dir = is_dir or full.is_dir() and not full.is_symlink()
            except OSError:  # inside a folder we may not enter (EACCES): the read below says so
                is_dir = False
            if is_dir:
                if self.index.remove(rel):  # a file replaced by a folder of the same name
                    done[rel] = DELETE
                if self._observer is not None:  # a new folder gets its watch (unless skipped)
                    try:
                        self._watch_new_folder(rel)
                    except Exception:
                        log.debug("cannot watch %s", rel, exc_info=True)
                for sub in self._walk(rel):
                    done[sub] = self._update(sub)
            else:
                done[rel] = self._update(rel)
        self.batches += 1
        if self.on_batch is not None and done:
            self.on_batch(done)
        return done

    def _walk(self, rel_dir: str) -> list[str]:
        out = []
        if self._skip_reason(rel_dir + "/x") or path_reason(rel_dir, self._ignore_rules(rel_dir + "/x"), is_dir=True):
            return out
        stack = [rel_dir]  # an explicit stack (os.walk recurses): any depth; symlinked folders not followed
        while stack:
            base = stack.pop()
            rules = self._ignore_rules(base + "/x")
            try:
                entries = sorted(os.scandir(self.root / base), key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for e in entries:
                try:
                    is_dir, is_link = e.is_dir(), e.is_symlink()
                except OSError:
                    continue
                if is_dir:
                    if not is_link and not path_reason(f"{base}/{e.name}", rules, is_dir=True):
                        subdirs.append(f"{base}/{e.name}")
                else:
                    out.append(f"{base}/{e.name}")
            stack.extend(reversed(subdirs))
        return out

    def _update(self, rel: str) -> str:
        """Read one file and index it, or drop it when it is gone or no longer allowed."""
        reason = self._read(rel)
        if isinstance(reason, str):
            if self.index.remove(rel):
                log.debug("dropped %s: %s", rel, reason)
                return DELETE
            log.debug("skipped %s: %s", rel, reason)
            return "skipped"
        # parsed when something needs its symbols (or only its changed statements, now); the
        # content rules were applied by ``_read``
        self.index.apply_change(rel, reason[0], lazy=True, checked=self.max_bytes <= self.index.max_bytes)
        return UPDATE

    def _read(self, rel: str) -> str | tuple[str]:
        """``(text,)`` when the file may be indexed, else why not."""
        if not wanted(rel):
            return "not a source file"
        reason = self._skip_reason(rel)
        if reason:
            return reason
        full = self.root / rel
        try:
            if full.is_symlink():
                target = Path(os.path.realpath(full))
                if target != self.real_root and self.real_root not in target.parents:
                    return "symlink pointing outside the workspace"
                trel = target.relative_to(self.real_root).as_posix()  # judged by its target too
                why = self._skip_reason(trel) or path_reason(trel, self._ignore_rules(trel))
                if why:
                    return f"symlink to an excluded file ({why})"
            st = full.stat()
            if not full.is_file():
                return "not a regular file"
            if st.st_size > self.max_bytes:
                return f"larger than {self.max_bytes} bytes"
            data = full.read_bytes()
        except OSError as e:  # deleted meanwhile, permissions
            return f"unreadable: {e.strerror or e}"
        reason, text = classify(rel, data, self._ignore_rules(rel), max_bytes=self.max_bytes)
        return reason if reason else (text,)


class _Handler(FileSystemEventHandler):
    """watchdog handler: file system events -> ``WorkspaceWatcher.notify``."""

    def __init__(self, watcher: WorkspaceWatcher):
        super().__init__()
        self.w = watcher

    def dispatch(self, event) -> None:
        try:
            kind = event.event_type
            if kind in ("opened", "closed_no_write"):
                return
            src = self.w.relative(event.src_path)
            if kind == "closed":  # written and closed: no need to wait for more events of it
                if src is not None and not event.is_directory:
                    self.w.notify(src, UPDATE, written=True)
                return
            if kind == "moved":
                if src is not None:
                    self.w.notify(src, DELETE, event.is_directory)
                dest = self.w.relative(event.dest_path)
                if dest is not None:
                    self.w.notify(dest, UPDATE, event.is_directory)
                return
            if src is None:
                return
            if kind == "deleted":
                self.w.notify(src, DELETE, event.is_directory)
            elif kind in ("created", "modified") and not (event.is_directory and kind == "modified"):
                self.w.notify(src, UPDATE, event.is_directory)
        except Exception:
            log.debug("watch event failed", exc_info=True)
