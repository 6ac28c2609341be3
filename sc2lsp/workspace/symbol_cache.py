"""Parsed symbols of files, kept on disk across restarts, keyed by the file's content.

``SymbolCache(folder)`` stores one small file per (format version, path, language, content
digest): ``get(path, language, digest)`` returns the ``FileSymbols`` a parse of that text gave, or
None; ``lookup`` returns the names the index files it under and a loader that decodes the symbols
when first needed (a restart decodes only what requests use); ``put(path, language, digest, symbols)`` queues a write that a background thread makes with
``fileio.atomic_write`` (so a reader never sees half a file). A restarted server's initial index
takes symbols from here instead of parsing (``workspace.indexer``).

Nothing read here is trusted: an entry must carry its own key and a checksum of its payload, and
decode (``marshal``: plain tuples, strings and ints only, never code or objects) into fields of the
right types; anything else is ignored as a miss (and rewritten by the next parse).

Folder: ``$SC2LSP_SYMBOL_CACHE``, else ``$XDG_CACHE_HOME/sc2lsp/symbols`` (``~/.cache/...``).
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import queue
import sys
import threading
import zlib
from pathlib import Path

from ..context.index import lookup_names
from ..context.symbols import Definition, FileSymbols, Import
from ..fileio import atomic_write, user_cache_dir

log = logging.getLogger(__name__)

MAGIC = b"sc2sym04"  #: bump with any change of extract()'s output or of this format
_SUM = 16
_intern = sys.intern


def default_cache_dir() -> Path:
    return user_cache_dir("symbols", "SC2LSP_SYMBOL_CACHE")

def cache_key(path: str, language: str | None, digest: bytes) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(MAGIC + f"\0{language or ''}\0{path}\0".encode("utf-8", errors="surrogatepass") + digest)
    return h.hexdigest()


def encode(key: str, symbols: FileSymbols) -> bytes:
    defs = tuple((d.name, d.kind, d.start_line, d.end_line, d.body_line, d.signature, d.doc, d.container)
                 for d in symbols.definitions)
    imports = tuple((i.module, i.name, i.alias, i.wildcard) for i in symbols.imports)
    # compressed: an index keeps the compact form of files no request used (a quarter of the size)
    body = zlib.compress(marshal.dumps((key, defs, imports, tuple(symbols.identifiers), int(symbols.errors)), 4), 1)
    head = marshal.dumps((key, lookup_names(symbols)), 4)
    payload = len(head).to_bytes(4, "little") + head + body
    return MAGIC + hashlib.blake2b(payload, digest_size=_SUM).digest() + payload


def _split(data: bytes, key: str) -> tuple[tuple[str, ...], bytes] | None:
    """(names, body) of an entry whose checksum and key hold, else None."""
    start = len(MAGIC) + _SUM
    if len(data) < start + 4 or data[:len(MAGIC)] != MAGIC:
        return None
    payload = memoryview(data)[start:]
    if hashlib.blake2b(payload, digest_size=_SUM).digest() != data[len(MAGIC):start]:
        return None
    n = int.from_bytes(payload[:4], "little")
    try:
        got, names = marshal.loads(payload[4:4 + n])
    except (ValueError, TypeError, EOFError):
        return None
    if got != key or type(names) is not tuple or not all(type(x) is str for x in names):
        return None
    return tuple(sys.intern(x) for x in names), bytes(payload[4 + n:])


def _opt_str(x) -> bool:
    return x is None or type(x) is str


def unpack(data: bytes, key: str, path: str):
    """``(names, loader)`` of an encoded entry (see ``SymbolCache.lookup``), None if unsound."""
    split = _split(data, key)
    if split is None:
        return None
    names, body = split
    return names, Compact(body, key, path)


class Compact:
    """The loader of a file's symbols in the compact form: called, it decodes them all (None if
    the entry is unsound); ``named(name)`` decodes only the definitions named ``name`` (what a
    name lookup across the index needs: no objects for the rest of the file, nothing kept)."""

    __slots__ = ("body", "key", "path")

    def __init__(self, body: bytes, key: str, path: str):
        self.body, self.key, self.path = body, key, path

    def __call__(self) -> FileSymbols | None:
        return _decode_body(self.body, self.key, self.path)

    def named(self, name: str) -> list[Definition] | None:
        try:
            got, defs, *_ = marshal.loads(zlib.decompress(self.body))
            if got != self.key:
                return None
            return [_definition(t, self.path) for t in defs if t[0] == name]
        except (ValueError, TypeError, EOFError, IndexError, zlib.error):
            return None


def decode(data: bytes, key: str, path: str) -> FileSymbols | None:
    """The symbols stored in ``data`` for ``key``; None for anything not written by ``encode``."""
    split = _split(data, key)
    return None if split is None else _decode_body(split[1], key, path)


def _decode_body(body: bytes, key: str, path: str) -> FileSymbols | None:
    try:
        got, defs, imports, idents, errors = marshal.loads(zlib.decompress(body))
        if got != key or type(errors) is not int:
            return None
        out = [_definition(t, path) for t in defs]
        imps = []
        for module, name, alias, wildcard in imports:
            if not (type(module) is str and _opt_str(name) and _opt_str(alias) and type(wildcard) is bool):
                return None
            imps.append(Import(module, name, alias, wildcard))
        if not all(type(w) is str for w in idents):
            return None
        return FileSymbols(tuple(out), tuple(imps), tuple(sys.intern(w) for w in idents), errors)
    except (ValueError, TypeError, EOFError, zlib.error):  # truncated, wrong shape
        return None


def _definition(t: tuple, path: str) -> Definition:
    """A ``Definition`` from its encoded tuple; TypeError when a field has the wrong type."""
    name, kind, start, end, body, sig, doc, container = t
    if (type(name) is not str or type(kind) is not str or type(start) is not int or type(end) is not int
            or type(body) is not int or type(sig) is not str or type(doc) is not str
            or (container is not None and type(container) is not str)):
        raise TypeError("a damaged definition")
    # names, kinds and containers repeat across files: one string each (a fifth of the decoded size)
    return Definition(_intern(name), _intern(kind), path, start, end, body, sig, doc or "",
                      None if container is None else _intern(container))


class SymbolCache:
    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.hits = self.misses = self.written = 0
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _file(self, key: str) -> Path:
        return self.folder / key[:2] / key[2:]

    def _read(self, path: str, language: str | None, digest: bytes, parse):
        """``parse(data, key, path)`` of the file's entry, counted as a hit; None (a miss) when there
        is none or it is damaged."""
        key = cache_key(path, language, digest)
        try:
            with open(self._file(key), "rb") as f:
                data = f.read()
        except OSError:
            self.misses += 1
            return None
        found = parse(data, key, path)
        if found is None:
            log.debug("ignoring a damaged symbol cache entry for %s", path)
            self.misses += 1
        else:
            self.hits += 1
        return found

    def get(self, path: str, language: str | None, digest: bytes) -> FileSymbols | None:
        return self._read(path, language, digest, decode)

    def lookup(self, path: str, language: str | None, digest: bytes):
        """``(names, loader)``: the names the index files the file under and a function that
        decodes its symbols (None if that fails after all); None when the cache has no sound entry."""
        return self._read(path, language, digest, unpack)

    def put(self, path: str, language: str | None, digest: bytes, symbols: FileSymbols) -> None:
        """Queue a write (made by a background thread; ``flush`` waits for it)."""
        self._enqueue((path, language, digest, symbols))

    def put_encoded(self, key: str, data: bytes) -> None:
        """Queue the write of an entry ``encode`` made."""
        self._enqueue((key, data))

    def _enqueue(self, item: tuple) -> None:
        self._queue.put(item)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_pending, name="sc2lsp-symbol-cache", daemon=True)
                self._thread.start()

    def _write_pending(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self.write(*item)
            except Exception:  # a full disk or a read-only cache costs the cache, nothing else
                log.debug("cannot write the symbol cache entry of %s", item[0], exc_info=True)
            finally:
                self._queue.task_done()

    def write(self, *item) -> None:
        """Write ``(path, language, digest, symbols)`` or ``(key, encoded data)`` (unless there)."""
        key = cache_key(*item[:3]) if len(item) == 4 else item[0]
        target = self._file(key)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        data = encode(key, item[3]) if len(item) == 4 else item[1]
        atomic_write(target, lambda f: f.write(data))
        self.written += 1

    def flush(self) -> None:
        """Wait until every queued write is made (tests, shutdown)."""
        self._queue.join()
