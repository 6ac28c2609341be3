"""Saved KV states of the llama.cpp backend: an LRU in RAM keyed by token sequence, and a disk
tier that keeps them across server restarts.

Token ids and bytes only, no llama_cpp: the backend serialises the states (``llama_state_seq_*``).
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import queue
import shutil
import struct
import threading
import time
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

from ..fileio import user_cache_dir


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    # compare in blocks first: prompts share long prefixes
    step = 256
    while i + step <= n and a[i:i + step] == b[i:i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


class StateCache:
    """Saved llama states keyed by their token sequence; least recently used dropped first."""

    def __init__(self, capacity_bytes: int):
        self.capacity = capacity_bytes
        self._items: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._sizes: dict[tuple[int, ...], int] = {}
        self.saves = self.loads = 0

    @property
    def nbytes(self) -> int:
        return sum(self._sizes.values())

    def __len__(self) -> int:
        return len(self._items)

    def best(self, tokens: Sequence[int]) -> tuple[tuple[int, ...] | None, int]:
        """The saved key sharing the longest prefix with ``tokens``, and that length."""
        best_key, best_n = None, 0
        for key in self._items:
            n = _common_prefix(key, tokens)
            if n > best_n:
                best_key, best_n = key, n
        return best_key, best_n

    def covers(self, tokens: Sequence[int]) -> bool:
        """Whether some saved state already holds all of ``tokens`` (no need to save again)."""
        return any(len(k) >= len(tokens) and _common_prefix(k, tokens) == len(tokens) for k in self._items)

    def put(self, key: tuple[int, ...], state: object, size: int) -> None:
        if size > self.capacity:
            return
        # a saved state that is a prefix of the new one is redundant
        for k in [k for k in self._items if len(k) <= len(key) and key[: len(k)] == k]:
            self._drop(k)
        self._items[key] = state
        self._sizes[key] = size
        while self.nbytes > self.capacity:
            self._drop(next(iter(self._items)))
        self.saves += 1

    def get(self, key: tuple[int, ...]) -> object:
        self._items.move_to_end(key)
        self.loads += 1
        return self._items[key]

    def _drop(self, key) -> None:
        del self._items[key]
        del self._sizes[key]


# ---------------------------------------------------------------------------- the disk tier

MAGIC = b"SC2KV\0\1\0"
_HEAD = struct.Struct("<8sI")  # magic, header length


def default_state_dir() -> Path:
    """``$SC2LSP_STATE_DIR``, else ``$XDG_CACHE_HOME/sc2lsp/kv-states`` (``~/.cache/...``)."""
    return user_cache_dir("kv-states", "SC2LSP_STATE_DIR")

def file_identity(path: str | Path | None) -> dict | None:
    """What identifies a file's content cheaply: real path, size, modification time."""
    if path is None:
        return None
    p = Path(path).resolve()
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _mtime(f: Path) -> int:
    try:
        return f.stat().st_mtime_ns
    except OSError:
        return 0


def _size(f: Path) -> int:
    try:
        return f.stat().st_size
    except OSError:
        return 0


def _tokens_bytes(tokens: Sequence[int]) -> bytes:
    return array.array("i", tokens).tobytes()


class DiskStates:
    """Saved KV states on disk, for the next server start: one file per state, named by a hash of
    its tokens, in a directory per model identity (``identity``: model file, adapter, context
    parameters, library version). Files are written by a background thread to a temporary name,
    fsynced and renamed; the directory is kept under ``capacity`` bytes, least recently used
    first. A file that does not read back whole (wrong magic, identity, length or checksum) is
    removed and never loaded, so a state is only ever restored for the model and tokens it was
    made from."""

    def __init__(self, root: Path, identity: dict, capacity_bytes: int):
        self.identity = identity
        ident = json.dumps(identity, sort_keys=True)
        self.dir = Path(root) / hashlib.sha256(ident.encode()).hexdigest()[:20]
        self.capacity = capacity_bytes
        self.loads = self.saves = self.dropped = self.removed = 0
        self._index: dict[tuple[int, ...], Path] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._thread: threading.Thread | None = None
        self._forget_other_identities(Path(root))
        self._scan()
        self._prefetched: dict[tuple[int, ...], tuple] = {}

    def prefetch(self, budget_bytes: int) -> None:
        """Read the most recently used states (up to ``budget_bytes``) into memory in a background
        thread, so that restoring one after a restart costs no disk read."""
        def run() -> None:
            with self._lock:
                items = list(self._index.items())
            items.sort(key=lambda kv: _mtime(kv[1]), reverse=True)
            used = 0
            for key, f in items:
                size = _size(f)
                if used + size > budget_bytes:
                    break
                data = self._read_state(key, f)
                if data is not None:
                    with self._lock:
                        self._prefetched[key] = data
                    used += size

        threading.Thread(target=run, name="sc2lsp-kv-prefetch", daemon=True).start()

    # -------------------------------------------------------------- index

    def _forget_other_identities(self, root: Path) -> None:
        """Remove directories of earlier identities of the same model file (it changed)."""
        model = self.identity.get("model", {}).get("path")
        if not root.is_dir():
            return
        for d in root.iterdir():
            meta = d / "identity.json"
            if d == self.dir or not meta.is_file():
                continue
            try:
                other = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if other.get("model", {}).get("path") == model and other != self.identity:
                shutil.rmtree(d, ignore_errors=True)
                self.removed += 1

    def _scan(self) -> None:
        if not self.dir.is_dir():
            return
        for f in self.dir.glob("*.kv"):
            head = self._read_head(f)
            if head is None:
                self._remove(f)
                continue
            self._index[head[1]] = f
        for f in self.dir.glob("*.tmp"):  # a write that never finished
            self._remove(f)

    def _read_head(self, f: Path) -> tuple[dict, tuple[int, ...], int] | None:
        """(header, tokens, offset of the state bytes), or None when the file is not whole."""
        try:
            with open(f, "rb") as fh:
                magic, hlen = _HEAD.unpack(fh.read(_HEAD.size))
                if magic != MAGIC or hlen > 1 << 20:
                    return None
                head = json.loads(fh.read(hlen))
                tok_bytes = fh.read(4 * head["n_tokens"])
                size = os.fstat(fh.fileno()).st_size
        except (OSError, ValueError, KeyError, struct.error, TypeError):
            return None
        offset = _HEAD.size + hlen + 4 * head["n_tokens"]
        if (head.get("identity") != self.identity or len(tok_bytes) != 4 * head["n_tokens"]
                or zlib.crc32(tok_bytes) != head.get("tokens_crc") or size != offset + head.get("state_bytes", -1)):
            return None
        return head, tuple(array.array("i", tok_bytes)), offset

    def _remove(self, f: Path) -> None:
        try:
            f.unlink()
            self.removed += 1
        except OSError:
            pass

    def __len__(self) -> int:
        return len(self._index)

    def best(self, tokens: Sequence[int]) -> tuple[tuple[int, ...] | None, int]:
        best_key, best_n = None, 0
        with self._lock:
            keys = list(self._index)
        for key in keys:
            n = _common_prefix(key, tokens)
            if n > best_n:
                best_key, best_n = key, n
        return best_key, best_n

    def covers(self, tokens: Sequence[int]) -> bool:
        with self._lock:
            keys = list(self._index)
        return any(len(k) >= len(tokens) and _common_prefix(k, tokens) == len(tokens) for k in keys)

    # -------------------------------------------------------------- load (the worker thread)

    def load(self, key: tuple[int, ...]):
        """The state bytes saved for ``key`` (a ctypes buffer, length), or None (file removed)."""
        with self._lock:
            f = self._index.get(key)
            data = self._prefetched.pop(key, None)
        if f is None:
            return None
        if data is None:
            data = self._read_state(key, f)
        if data is None:
            with self._lock:
                self._index.pop(key, None)
            self._remove(f)
            return None
        try:
            os.utime(f)  # recently used: evicted last
        except OSError:
            pass
        self.loads += 1
        return data

    def _read_state(self, key: tuple[int, ...], f: Path):
        """(ctypes buffer, length) of a whole, checked state file, else None."""
        import ctypes

        got = self._read_head(f)
        ok = got is not None and got[1] == key
        if ok:
            head, _, offset = got
            buf = (ctypes.c_uint8 * head["state_bytes"])()
            try:
                with open(f, "rb") as fh:
                    fh.seek(offset)
                    ok = fh.readinto(buf) == head["state_bytes"] and zlib.crc32(buf) == head["state_crc"]
            except OSError:
                ok = False
        return (buf, head["state_bytes"]) if ok else None

    # -------------------------------------------------------------- save (background)

    def save(self, key: tuple[int, ...], buf, n: int) -> bool:
        """Queue ``buf[:n]`` (not modified afterwards) to be written for ``key``; never waits:
        when the writer is busy the state is dropped (False)."""
        if n > self.capacity or self.covers(key):
            return False
        try:
            self._queue.put_nowait((key, buf, n))
        except queue.Full:
            self.dropped += 1
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._writer, name="sc2lsp-kv-writer", daemon=True)
            self._thread.start()
        return True

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until queued states are written (tests, benchmarks, shutdown)."""
        end = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.01)

    def _writer(self) -> None:
        while True:
            key, buf, n = self._queue.get()
            try:
                self._write(key, buf, n)
            except OSError:
                pass  # a full disk or a read-only cache: the state stays in RAM only
            finally:
                self._queue.task_done()

    def _write(self, key: tuple[int, ...], buf, n: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "identity.json"
        if not meta.exists():
            meta.write_text(json.dumps(self.identity, sort_keys=True))
        tok_bytes = _tokens_bytes(key)
        view = memoryview(buf).cast("B")[:n]
        head = json.dumps({"identity": self.identity, "n_tokens": len(key), "tokens_crc": zlib.crc32(tok_bytes),
                           "state_bytes": n, "state_crc": zlib.crc32(view)}).encode()
        name = hashlib.sha256(tok_bytes).hexdigest()[:24]
        final, tmp = self.dir / f"{name}.kv", self.dir / f"{name}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(_HEAD.pack(MAGIC, len(head)))
            fh.write(head)
            fh.write(tok_bytes)
            fh.write(view)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        with self._lock:
            # a saved state that is a prefix of the new one is redundant
            for k in [k for k in self._index if len(k) <= len(key) and key[: len(k)] == k]:
                old = self._index.pop(k)
                if old != final:
                    self._remove(old)
            self._index[key] = final
        self.saves += 1
        self._evict()

    def _evict(self) -> None:
        files = []
        for f in self.dir.glob("*.kv"):
            try:
                st = f.stat()
            except OSError:
                continue
            files.append((st.st_mtime_ns, st.st_size, f))
        total = sum(s for _, s, _ in files)
        for _, size, f in sorted(files):
            if total <= self.capacity:
                break
            with self._lock:
                for k in [k for k, v in self._index.items() if v == f]:
                    del self._index[k]
            self._remove(f)
            total -= size

    @property
    def nbytes(self) -> int:
        return sum(f.stat().st_size for f in self.dir.glob("*.kv")) if self.dir.is_dir() else 0
