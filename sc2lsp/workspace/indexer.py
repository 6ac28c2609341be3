"""Initial indexing of a workspace: ``scan`` (the shared file rules) -> parse -> ``RepoIndex``.

Edge code: this module reads the disk, the index does not. Files are read by
``sc2lsp.workspace.scan.scan`` (ignore files, secrets, vendored, binary, minified, generated,
size and symlink rules), so nothing the scan skips can reach the index. Parsing is the
expensive part; for large workspaces it runs in worker processes (``spawn``, safe in a server
with threads), which send back symbols only, and the index is filled in scan order.

With a ``SymbolCache`` a file whose symbols were parsed before (same path and content) is not
parsed again. ``lazy=True`` parses nothing: files without cached symbols are filed under the
cheap superset of their names (``symbols.candidate_names``) and parsed when first needed, or by
``parse_pending`` (what a server runs in the background once its index is ready).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from ..context.index import FileEntry, RepoIndex, text_digest
from ..context.languages import language_for
from ..context.symbols import FileSymbols, extract
from .scan import MAX_BYTES, is_source_path, scan
from .symbol_cache import SymbolCache, cache_key, encode, unpack

log = logging.getLogger(__name__)

#: Below this many files, starting worker processes costs more than it saves.
PROCESS_THRESHOLD = 800
BATCH = 48


@dataclass
class IndexReport:
    root: str
    files: int = 0  #: files in the index after the scan
    skipped: Counter = field(default_factory=Counter)  #: reason -> count
    seconds: float = 0.0
    scan_seconds: float = 0.0
    parse_seconds: float = 0.0
    workers: int = 1
    cached: int = 0  #: files whose symbols came from the symbol cache
    parsed: int = 0  #: files parsed during the initial index
    lazy: int = 0  #: files left to parse when needed

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0


def wanted(rel_path: str) -> bool:
    """Files worth indexing: a known language, or a source/text file by name (similar chunks)."""
    return language_for(rel_path) is not None or is_source_path(rel_path)


def _parse_batch(items: list[tuple[str, str]]) -> list[tuple[str, str | None, FileSymbols]]:
    out = []
    for path, text in items:
        language = language_for(path, text=text)
        out.append((path, language, extract(path, text, language)))
    return out


def _encode_batch(items: list[tuple[str, str | bytes]], root: str | None = None) -> list[tuple[str, str, bytes]]:
    """(path, cache key, encoded symbols) of files with a grammar (what ``parse_pending``'s worker
    processes send back: bytes, not objects). With a ``root`` the items are (path, digest of the
    indexed text) and the file is read here: one whose text is no longer the indexed one is left out."""
    out = []
    for path, text in items:
        if root is not None:
            digest = text
            try:
                text = (Path(root) / path).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if text_digest(text) != digest:
                continue
        language = language_for(path, text=text)
        key = cache_key(path, language, text_digest(text))
        out.append((path, key, encode(key, extract(path, text, language))))
    return out


def _batches(items: list[tuple[str, str]], size: int) -> Iterable[list[tuple[str, str]]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def index_workspace(index: RepoIndex, root: str | Path, *, workers: int | None = None,
                    max_bytes: int = MAX_BYTES,
                    progress: Callable[[str, int, int], None] | None = None,
                    cache: SymbolCache | None = None, lazy: bool = False) -> IndexReport:
    """Scan ``root`` and feed every kept file to ``index``.

    ``workers``: parser processes (None = one per core when the workspace has at least
    ``PROCESS_THRESHOLD`` files to parse, else parse in this process; 0 or 1 = this process).
    ``progress(stage, done, total)`` is called while scanning (total 0) and parsing.
    ``cache``: symbols parsed before are taken from it, and (not ``lazy``) new parses go to it.
    ``lazy``: nothing is parsed here (see the module doc).
    """
    root = Path(root)
    report = IndexReport(str(root))
    t0 = time.perf_counter()
    items: list[tuple[str, str]] = []
    for entry in scan(root, max_bytes=max_bytes):
        if entry.reason is not None:
            report.skipped[entry.reason.split(":")[0]] += 1
            log.debug("skip %s: %s", entry.path, entry.reason)
            continue
        if not wanted(entry.path):
            report.skipped["not a source file"] += 1
            continue
        items.append((entry.path, entry.text or ""))
        if progress and len(items) % 200 == 0:
            progress("scan", len(items), 0)
    report.scan_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = len(items)
    items = _from_cache(index, items, cache, lazy, report)
    done = n - len(items)
    if lazy:
        for path, text in items:
            index.apply_entry(FileEntry(path, language_for(path, text=text), text, None, text_digest(text)))
        report.lazy, items = len(items), []
    report.parsed = len(items)
    if workers is None:
        workers = (os.cpu_count() or 1) if len(items) >= PROCESS_THRESHOLD else 1
    workers = max(1, min(workers, len(items) // BATCH + 1))
    report.workers = workers
    texts = dict(items)

    def put(results: list[tuple[str, str | None, FileSymbols]]) -> None:
        nonlocal done
        for path, language, symbols in results:
            text = texts[path]
            entry = FileEntry(path, language, text, symbols, text_digest(text))
            index.apply_entry(entry)
            if cache is not None and language is not None:
                cache.put(path, language, entry.digest, symbols)
        done += len(results)
        if progress:
            progress("parse", done, n)

    if workers > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for results in pool.map(_parse_batch, _batches(items, BATCH)):
                put(results)
    else:
        for batch in _batches(items, BATCH):
            put(_parse_batch(batch))
    report.parse_seconds = time.perf_counter() - t1
    report.files = len(index)
    if n >= PROCESS_THRESHOLD:
        # The index is millions of long-lived objects without reference cycles: take them out of
        # the cyclic collector's scans, or every full collection pauses a request for ~0.5 s.
        # (Entries replaced later are still freed by reference counting.)
        gc.freeze()
    report.seconds = time.perf_counter() - t0
    return report


def _from_cache(index: RepoIndex, items: list[tuple[str, str]], cache: SymbolCache | None, lazy: bool,
                report: IndexReport) -> list[tuple[str, str]]:
    """Index the files whose symbols the cache holds; the others are returned (in order)."""
    if cache is None:
        return items
    rest = []
    for path, text in items:
        language = language_for(path, text=text)
        digest = text_digest(text)
        found = cache.lookup(path, language, digest) if language is not None else None
        if found is None:
            rest.append((path, text))
            continue
        names, loader = found
        if lazy:  # decoded when first used
            index.apply_entry(FileEntry(path, language, text, None, digest, names=names, loader=loader))
        else:
            symbols = loader()
            if symbols is None:
                rest.append((path, text))
                continue
            index.apply_entry(FileEntry(path, language, text, symbols, digest))
        report.cached += 1
    return rest


def _background() -> None:
    """A background parser process yields the CPU to the server's requests (the model's threads):
    the parse right after the scan otherwise competed with the first prompt's evaluation."""
    try:
        os.nice(10)
    except (AttributeError, OSError):  # no nice() (Windows): the parse runs at the same priority
        pass


def parse_pending(index: RepoIndex, *, workers: int | None = None, cache: SymbolCache | None = None,
                  stop: Callable[[], bool] | None = None, root: str | Path | None = None) -> int:
    """Parse the index's entries that have no symbols yet (in worker processes when there are
    ``PROCESS_THRESHOLD`` or more) into the symbol cache's compact form: each entry (unless it
    was replaced meanwhile) is filed under its definitions' names and decodes its symbols when
    first used, so the index holds bytes, not objects, for files no request needed; ``cache``
    also gets the entries. Returns how many were parsed here; ``stop()`` true ends it early.
    ``root``: worker processes read the files from there (and skip those that changed) instead of
    being sent every text."""
    entries = [e for e in index.unparsed() if e.language is not None]
    if workers is None:
        workers = (os.cpu_count() or 1) if len(entries) >= PROCESS_THRESHOLD else 1
    workers = max(1, min(workers, len(entries) // BATCH + 1))
    by_path = {e.path: e for e in entries}
    done = 0

    def put(results: list[tuple[str, str, bytes]]) -> None:
        nonlocal done
        for path, key, data in results:
            found = unpack(data, key, path)
            if found is not None and by_path[path].set_compact(*found):
                done += 1
                if cache is not None:
                    cache.put_encoded(key, data)

    if workers > 1:
        send = root is not None
        items = [(e.path, e.digest if send else e.text_once()) for e in entries]
        job = partial(_encode_batch, root=str(root) if send else None)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_background) as pool:
            for results in pool.map(job, _batches(items, BATCH)):
                put(results)
                if stop is not None and stop():
                    pool.shutdown(wait=False, cancel_futures=True)
                    break
    else:
        for batch in _batches([(e.path, e.text_once()) for e in entries], BATCH):
            if stop is not None and stop():
                break
            put(_encode_batch(batch))
    if done:
        index.compact()
    if done >= PROCESS_THRESHOLD:
        gc.freeze()  # as after the initial index: the new entries out of the collector's scans
    return done


def cache_parsed(index: RepoIndex, cache: SymbolCache, skip: Callable[[str], bool] | None = None) -> None:
    """Have every parse of an entry of ``index`` stored in ``cache`` (but not of paths ``skip``s:
    the editor's unsaved texts)."""

    def store(entry: FileEntry) -> None:
        if entry.language is not None and (skip is None or not skip(entry.path)):
            cache.put(entry.path, entry.language, entry.digest, entry.symbols)

    index.on_parsed = store
