"""Each document's committed repository context, kept beside the saved KV states for the next
server start.

The repository context comes first in a prompt, so a KV state saved on disk (``backends/
state_store.py``) restores a whole prompt after a restart only if the restarted server puts the
*same* context blocks in front of it; a restarted server rebuilds its index and loses the recent
edits, so it would gather other blocks. Here every context the engine commits for a document is
recorded (per document: the few most recent places, keyed by a hash of the prompt's kept suffix)
with a fingerprint of each file its blocks come from: size, modification time and SHA-256 of the
file on disk (of the document's own text for blocks of the document itself). A restarted engine
looks a record up where it would otherwise gather context anew and reuses its blocks while their
files are unchanged; the blocks before the first changed file are kept, the rest is gathered
again (so a changed file's block is never served stale and only the shared prompt prefix is
restored). A record is used once: whatever the session commits at that place replaces it.

Files: ``<state dir>/contexts/<hash of the URI>.json``, written atomically by a background
thread; the least recently written beyond ``MAX_DOCS`` are removed; a file that does not parse
is removed and ignored. Limitation: a block gathered from an editor buffer with unsaved changes
is fingerprinted by the file on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from .core.prompt import SourceFile
from .fileio import atomic_write

log = logging.getLogger("sc2lsp.engine")

FORMAT = 1
PER_DOC = 4  #: places remembered per document
MAX_DOCS = 512  #: documents remembered


@dataclass(frozen=True)
class SavedContext:
    """A context committed in an earlier session at the same place of the same document."""

    files: tuple[SourceFile, ...]
    budget: int
    complete: bool
    valid: int  #: how many leading files are unchanged (== len(files): all of them)


def _sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data).hexdigest()


def workspace_root(uri: str, rel: str | None) -> Path | None:
    """The folder a document's workspace-relative path ``rel`` is relative to."""
    p = urlparse(uri)
    if not rel or p.scheme != "file":
        return None
    path = Path(unquote(p.path)).resolve()
    parts = Path(rel).parts
    if len(path.parts) <= len(parts) or path.parts[-len(parts):] != parts:
        return None
    return path.parents[len(parts) - 1]


class SavedContexts:
    """Committed contexts of earlier sessions (read on demand) and of this one (written)."""

    def __init__(self, root: Path | None):
        self.dir = None if root is None else Path(root) / "contexts"
        self._restored: dict[str, dict[str, dict]] = {}  #: uri -> suffix hash -> record (earlier sessions)
        self._records: dict[str, list[dict]] = {}  #: uri -> what its file holds, newest first
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc2lsp-ctx-writer")
        self._pending = 0
        self.used = self.stale = self.written = self.removed = 0

    def _file(self, uri: str) -> Path:
        return self.dir / f"{_sha(uri)[:24]}.json"

    def _load(self, uri: str) -> dict[str, dict]:
        """The records of ``uri`` on disk, read once per session (under the lock)."""
        got = self._restored.get(uri)
        if got is not None or self.dir is None:
            return got or {}
        got, records = {}, []
        f = self._file(uri)
        try:
            data = json.loads(f.read_text())
            if data.get("format") != FORMAT or data.get("uri") != uri:
                raise ValueError("another format or document")
            for r in data["records"]:
                files = tuple(SourceFile(p, c) for p, c in r["files"])
                got[str(r["suffix"])] = dict(r, files=files, budget=int(r["budget"]))
                records.append(got[str(r["suffix"])])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as e:  # damaged: never used
            log.info("saved context %s ignored and removed: %s", f, e)
            got, records = {}, []
            self._unlink(f)
        self._restored[uri] = got
        self._records.setdefault(uri, records)
        return got

    def _unlink(self, f: Path) -> None:
        try:
            f.unlink()
            self.removed += 1
        except OSError:
            pass

    # ------------------------------------------------------------------ look-up

    def find(self, uri: str, text: str, rel: str | None, cut_suffix: str) -> SavedContext | None:
        """The context an earlier session committed where the prompt keeps ``cut_suffix``, with how
        many of its leading files are unchanged; None when there is none."""
        if self.dir is None:
            return None
        with self._lock:
            rec = self._load(uri).get(_sha(cut_suffix))
        if rec is None:
            return None
        files, fps = rec["files"], rec.get("fingerprints", {})
        root = workspace_root(uri, rel)
        valid = 0
        for f in files:
            if not self._unchanged(f.path, fps.get(f.path), root, rel, text):
                break
            valid += 1
        if valid < len(files):
            self.stale += 1
        return SavedContext(files, rec["budget"], bool(rec.get("complete")), valid)

    @staticmethod
    def _unchanged(path: str | None, fp, root: Path | None, rel: str | None, text: str) -> bool:
        if not isinstance(fp, list) or path is None:
            return False
        if fp[0] == "text":  # a block of the document itself: its text now
            return path == rel and fp[1] == _sha(text)
        if root is None:
            return False
        try:
            st = (root / path).stat()
            if st.st_size != fp[0]:
                return False
            return st.st_mtime_ns == fp[1] or _sha((root / path).read_bytes()) == fp[2]
        except (OSError, IndexError, TypeError):
            return False

    # ------------------------------------------------------------------ recording

    def place(self, uri: str, text: str) -> int | None:
        """The cursor offset of an earlier session's newest record for ``uri`` when the document's
        text is the same as then (where the user was: the next start warms that prompt up)."""
        placed = self.placed(uri, text)
        return placed[0] if placed is not None else None

    def placed(self, uri: str, text: str) -> tuple[int, float] | None:
        """``place`` and the time that record was written (which document was used last)."""
        if self.dir is None:
            return None
        with self._lock:
            records = list(self._load(uri).values())
        sha = _sha(text)
        for r in sorted(records, key=lambda r: -float(r.get("t", 0))):
            if r.get("text") == sha and isinstance(r.get("offset"), int) and 0 <= r["offset"] <= len(text):
                return r["offset"], float(r.get("t", 0))
        return None

    def record(self, uri: str, text: str, offset: int, rel: str | None, cut_suffix: str,
               files: tuple[SourceFile, ...], budget: int, complete: bool) -> None:
        """Keep this commit (at cursor ``offset``) for the next session (written in the
        background); it replaces an earlier session's record of the same place."""
        if self.dir is None:
            return
        key, gathered_ns = _sha(cut_suffix), time.time_ns()
        with self._lock:
            self._load(uri).pop(key, None)
            self._pending += 1
        place = (offset, _sha(text))
        try:
            self._pool.submit(self._write, uri, text, rel, key, files, budget, complete, gathered_ns, place)
        except RuntimeError:  # shut down
            with self._lock:
                self._pending -= 1

    def _write(self, uri, text, rel, key, files, budget, complete, gathered_ns, place) -> None:
        try:
            fps = self._fingerprints(files, uri, text, rel, gathered_ns)
            rec = {"suffix": key, "budget": budget, "complete": complete, "t": time.time(),
                   "offset": place[0], "text": place[1],
                   "files": [[f.path, f.code] for f in files], "fingerprints": fps}
            with self._lock:
                records = [r for r in self._records.get(uri, []) if r["suffix"] != key]
                records = [rec] + records[: PER_DOC - 1]
                self._records[uri] = records
            data = json.dumps({"format": FORMAT, "uri": uri, "records": [
                dict(r, files=[list(f) if isinstance(f, list) else [f.path, f.code] for f in r["files"]])
                for r in records]}).encode()
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self._file(uri), lambda fh: fh.write(data))
            self.written += 1
            if self.written % 32 == 1:
                self._evict()
        except Exception:  # a full disk or a read-only cache: the next start gathers afresh
            log.exception("saving the committed context failed")
        finally:
            with self._lock:
                self._pending -= 1

    @staticmethod
    def _fingerprints(files, uri, text, rel, gathered_ns) -> dict:
        """path -> [size, mtime_ns, sha256] of the file on disk (["text", sha256] for the
        document itself); a file changed after the context was gathered gets none (never reused)."""
        root = workspace_root(uri, rel)
        fps: dict = {}
        for f in files:
            if f.path is None or f.path in fps:
                continue
            if f.path == rel:
                fps[f.path] = ["text", _sha(text)]
                continue
            if root is None:
                continue
            try:
                p = root / f.path
                st = p.stat()
                data = p.read_bytes()
                if st.st_mtime_ns <= gathered_ns and len(data) == st.st_size:
                    fps[f.path] = [st.st_size, st.st_mtime_ns, _sha(data)]
            except OSError:
                pass
        return fps

    def _evict(self) -> None:
        files = []
        for f in self.dir.glob("*.json"):
            try:
                files.append((f.stat().st_mtime_ns, f))
            except OSError:
                pass
        for _, f in sorted(files)[: max(0, len(files) - MAX_DOCS)]:
            self._unlink(f)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the recorded contexts are written (tests, benchmarks)."""
        end = time.monotonic() + timeout
        while self._pending and time.monotonic() < end:
            time.sleep(0.01)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def saved_contexts_for(state_disk_mb: int) -> SavedContexts:
    """The store beside the KV states' disk tier (none when that is off)."""
    if state_disk_mb <= 0:
        return SavedContexts(None)
    from .backends.state_store import default_state_dir

    return SavedContexts(default_state_dir())

