"""Build an attribution index from corpus directories, files or in-memory documents.

``build_index(paths_or_docs, out)`` writes a new index (replacing one that is there);
``add_to_index(out, paths_or_docs)`` appends segments to an existing one. Directories are
walked with ``sc2lsp.workspace.scan`` (the same ignore, secret and generated-file rules as the
server and ``finetune prepare``), keeping source files and LICENSE-like files. Each document
is normalised, hashed at ``stride``, and described in the document table (repository, path,
revision, git blob hash, license). A document identical to one already in the segment (same git
blob) gets no postings of its own: it is an alias of the first, whose matches it shares.
Documents that do not come from a file on disk (or all, with ``store_text=True``) have their
text stored in the segment, zlib-compressed, so they can still be verified.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import sys
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import UserError
from .hashing import FP_BITS, GUARANTEE, HASH_NAME, WINDOW, bucket_and_fingerprint, window_hashes
from .filestat import settled_digest
from .licenses import LicenseResolver, is_license_file, spdx_header
from .normalize import NORMALIZATION_VERSION, normalize_with_offsets
from .rawsearch import is_exact
from .store import MANIFEST, is_segment_name, open_segment, read_manifest, write_manifest, write_segment

#: The largest stride that keeps the guarantee: copies of GUARANTEE normalised characters are found.
MAX_STRIDE = GUARANTEE - WINDOW + 1
DEFAULT_STRIDE = MAX_STRIDE
DEFAULT_CAP = 16
#: Format 1 had a Bloom filter; format 2 filters by 16-bit fingerprints instead. Accepted, unused.
DEFAULT_BLOOM_BITS = 8.0
#: Postings per bucket on average (one u32 bucket offset per BUCKET_LOAD postings).
BUCKET_LOAD = 16
#: Postings store the document in 16 bits: a segment holds at most this many documents.
SEGMENT_DOCS = 1 << 16
#: ... and at most this many windows (bounds the memory of a build: ~40 bytes per window).
SEGMENT_WINDOWS = 1 << 26
#: Every CHECKPOINT normalised characters the document table keeps the raw offset, so a query
#: normalises only the part of a document around a hit, not the whole file.
CHECKPOINT = 800
#: ``doc_flags`` bit: the document's normal form changes only whitespace (ASCII or NFC text).
FLAG_EXACT = 1


@dataclass
class Document:
    """One document to index. ``root``/``path`` locate it on disk; without ``root`` its text is stored.
    ``read_after_ns``: a ``time.time_ns()`` taken before the file's text was read (``iter_corpus``
    sets it), so the build can record the file's stat when it is settled (``filestat``)."""

    path: str
    text: str
    repository: str | None = None
    revision: str | None = None
    license: str | None = None
    license_source: str | None = None
    root: str | None = None
    read_after_ns: int | None = None


@dataclass
class BuildStats:
    documents: int = 0
    skipped: int = 0
    raw_bytes: int = 0
    windows: int = 0
    entries: int = 0
    segments: int = 0
    index_bytes: int = 0
    seconds: float = 0.0
    skipped_reasons: dict[str, int] = field(default_factory=dict)


def blob_hash(data: bytes) -> str:
    """Git's blob id of ``data`` (what ``git hash-object`` prints)."""
    h = hashlib.sha1(b"blob %d\x00" % len(data))
    h.update(data)
    return h.hexdigest()


def git_info(path: Path) -> tuple[str | None, str | None]:
    """(repository, HEAD commit) of the git work tree containing ``path``, read from ``.git``."""
    for d in [path, *path.parents]:
        git = d / ".git"
        if not git.is_dir():
            continue
        if d != path and _git_ignored(d, path):
            return None, None  # e.g. a Python install inside pyenv's checkout
        repo = d.name
        cfg = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            cfg.read(git / "config", encoding="utf-8")
            repo = cfg.get('remote "origin"', "url", fallback=repo)
        except (configparser.Error, OSError):
            pass
        rev = None
        try:
            head = (git / "HEAD").read_text().strip()
            if head.startswith("ref: "):
                ref = head[5:]
                if (git / ref).is_file():
                    rev = (git / ref).read_text().strip()
                elif (git / "packed-refs").is_file():
                    for line in (git / "packed-refs").read_text().splitlines():
                        if line.endswith(" " + ref):
                            rev = line.split()[0]
            else:
                rev = head
        except OSError:
            pass
        return repo, rev
    return None, None


def _git_ignored(top: Path, path: Path) -> bool:
    import pathspec

    try:
        lines = (top / ".gitignore").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    rel = path.relative_to(top).as_posix()
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    parts = rel.split("/")
    return any(spec.match_file("/".join(parts[: i + 1]) + "/") for i in range(len(parts)))


def iter_corpus(paths: Iterable[str | Path], stats: BuildStats | None = None) -> Iterator[Document]:
    """Documents of corpus paths (directories walked with the workspace scan rules, or files)."""
    from ..workspace.scan import ScanEntry, content_reason, is_source_path, scan

    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise UserError(f"corpus path {p} does not exist")
    for p in paths:
        p = p.resolve()
        read_after_ns = time.time_ns()  # before any file of this root is read
        if p.is_file():
            root, entries = p.parent, None
        else:
            root, entries = p, scan(p)
        repo, rev = git_info(root)
        resolver = LicenseResolver(root)
        explicit = entries is None  # a file named on the command line is indexed whatever its type
        if entries is None:
            try:
                reason, text = content_reason(p.read_bytes())
            except OSError as e:
                reason, text = f"unreadable: {e.strerror}", None
            entries = [ScanEntry(p.name, reason, text)]
        for e in entries:
            if e.reason is None and not (explicit or is_source_path(e.path) or is_license_file(e.path)):
                e_reason = "not a source or license file"
            else:
                e_reason = e.reason
            if e_reason is not None:
                if stats is not None:
                    stats.skipped += 1
                    stats.skipped_reasons[e_reason] = stats.skipped_reasons.get(e_reason, 0) + 1
                continue
            lic, lic_src = resolver.for_file(e.path, e.text)
            yield Document(path=e.path, text=e.text, repository=resolver.distribution(e.path) or repo or root.name,
                           revision=rev, license=lic, license_source=lic_src, root=str(root),
                           read_after_ns=read_after_ns)


def _as_documents(paths_or_docs, stats: BuildStats) -> Iterator[Document]:
    if isinstance(paths_or_docs, (str, Path, Document)):
        paths_or_docs = [paths_or_docs]
    pending: list[str | Path] = []
    for item in paths_or_docs:
        if isinstance(item, Document):
            if pending:
                yield from iter_corpus(pending, stats)
                pending = []
            yield item
        elif isinstance(item, (str, Path)):
            pending.append(item)
        else:
            raise UserError(f"cannot index {type(item).__name__} {item!r}: give paths or Document objects")
    if pending:
        yield from iter_corpus(pending, stats)


class SegmentBuilder:
    """Accumulates documents and writes segments of at most ``SEGMENT_WINDOWS`` windows."""

    def __init__(self, out: Path, *, stride: int, cap: int, bloom_bits: float, store_text: bool,
                 stats: BuildStats):
        if not 1 <= stride <= MAX_STRIDE:
            raise UserError(f"stride must be between 1 and {MAX_STRIDE} (got {stride}): larger strides break "
                            f"the guarantee that copies of {GUARANTEE} characters are found")
        if cap < 1 or bloom_bits <= 0:
            raise UserError("cap must be >= 1 and bloom bits per key > 0")
        self.out, self.stride, self.cap, self.bloom_bits = out, stride, cap, bloom_bits
        self.store_text, self.stats = store_text, stats
        self.written: list[dict] = []
        self._reset()

    def _reset(self) -> None:
        self.hashes: list[np.ndarray] = []
        self.hash_doc: list[int] = []  # the document of each array of hashes
        self.windows = 0
        self.alias: list[int] = []  # per document: -1, or the earlier identical document it aliases
        self.blobs: dict[str, int] = {}
        self.nchars: list[int] = []
        self.ckpts: list[np.ndarray] = []
        self.ckpt_first = [0]
        self.stat: list[int] = []  # doc_stat: the file's settled stat digest, or 0
        self.flags: list[int] = []  # doc_flags: FLAG_EXACT
        self.meta: list[bytes] = []
        self.texts: list[bytes] = []
        self.roots: dict[str, int] = {}
        self.strings: dict[str, int] = {}
        self.raw = 0

    def _str(self, value: str | None) -> int:
        return -1 if value is None else self.strings.setdefault(value, len(self.strings))

    def add(self, doc: Document) -> None:
        if not isinstance(doc.text, str):
            raise UserError(f"document {doc.path!r} has no text")
        data = doc.text.encode("utf-8", "surrogatepass")
        blob = blob_hash(data)
        same = self.blobs.get(blob)
        if same is None:
            norm, offsets = normalize_with_offsets(doc.text)
            h = window_hashes(norm, self.stride)
            if len(h) == 0:
                self.stats.skipped += 1
                self.stats.skipped_reasons["shorter than one window"] = self.stats.skipped_reasons.get(
                    "shorter than one window", 0) + 1
                return
            if len(h) > SEGMENT_WINDOWS:
                raise UserError(f"document {doc.path} is too large to index")
        if len(self.meta) >= SEGMENT_DOCS or (same is None and self.windows + len(h) > SEGMENT_WINDOWS):
            self.flush()
            if same is not None:  # its original is in the segment just written: index it afresh
                self.add(doc)
                return
        d = len(self.meta)
        spdx = doc.license or spdx_header(doc.text)
        # one JSON array a document; repeated strings go to the segment's string table
        meta = [doc.path, self._str(doc.repository), self._str(doc.revision), blob, self._str(spdx),
                self._str(doc.license_source or ("spdx-header" if spdx else None)), int(is_license_file(doc.path)),
                -1 if doc.root is None else self.roots.setdefault(doc.root, len(self.roots))]
        self.meta.append(json.dumps(meta, separators=(",", ":")).encode())
        stored = (self.store_text or doc.root is None) and same is None
        self.texts.append(zlib.compress(data, 6) if stored else b"")
        on_disk = doc.root is not None and not stored
        self.stat.append(settled_digest(f"{doc.root}/{doc.path}", len(data), doc.read_after_ns) if on_disk else 0)
        if same is None:
            self.flags.append(FLAG_EXACT if is_exact(doc.text) else 0)
        else:
            self.flags.append(self.flags[same])
        if same is None:
            self.blobs[blob] = d
            self.alias.append(-1)
            self.hashes.append(h)
            self.hash_doc.append(d)
            self.windows += len(h)
            self.nchars.append(len(norm))
            ck = offsets[: len(norm) : CHECKPOINT].astype(np.uint32)
            self.stats.windows += len(h)
        else:  # identical to document ``same``: its postings serve both
            self.alias.append(same)
            self.nchars.append(self.nchars[same])
            ck = self.ckpts[same]
        self.ckpts.append(ck)
        self.ckpt_first.append(self.ckpt_first[-1] + len(ck))
        self.raw += len(data)
        self.stats.documents += 1
        self.stats.raw_bytes += len(data)
    def flush(self) -> None:
        if not self.hashes:
            return
        n_docs = len(self.meta)
        alias = np.asarray(self.alias, dtype=np.int32)
        weights = np.bincount(np.where(alias < 0, np.arange(n_docs), alias), minlength=n_docs)
        hash_doc = np.repeat(np.asarray(self.hash_doc, dtype=np.uint16), [len(h) for h in self.hashes])
        arrays, info = segment_arrays(np.concatenate(self.hashes), hash_doc, weights, cap=self.cap)
        meta_off = np.cumsum([0] + [len(m) for m in self.meta], dtype=np.uint64)
        text_off = np.cumsum([0] + [len(t) for t in self.texts], dtype=np.uint64)
        name = f"seg-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}.sc2a"
        header = {"window": WINDOW, "stride": self.stride, "cap": self.cap, "fp_bits": FP_BITS,
                  "normalization": NORMALIZATION_VERSION, "hash": HASH_NAME, "checkpoint": CHECKPOINT,
                  "roots": list(self.roots), "docs": n_docs, "windows": self.windows, "raw_bytes": self.raw, **info}
        size = write_segment(self.out / name, header, {
            **arrays, "doc_alias": alias, "doc_nchars": np.asarray(self.nchars, dtype=np.uint32),
            "doc_meta_off": meta_off, "doc_ckpt_first": np.asarray(self.ckpt_first, dtype=np.uint32),
            "doc_ckpt": np.concatenate(self.ckpts), "doc_meta": b"".join(self.meta),
            "strings": json.dumps(list(self.strings)).encode(), "doc_text_off": text_off,
            "doc_text": b"".join(self.texts), "doc_stat": np.asarray(self.stat, dtype=np.uint64),
            "doc_flags": np.asarray(self.flags, dtype=np.uint8)})
        self.written.append({"file": name, "docs": n_docs, "windows": self.windows,
                             "entries": info["entries"], "raw_bytes": self.raw, "bytes": size})
        self.stats.entries += info["entries"]
        self.stats.segments += 1
        self.stats.index_bytes += size
        self._reset()


def segment_arrays(hashes: np.ndarray, hash_doc: np.ndarray, weights: np.ndarray, *, cap: int,
                   load: int = BUCKET_LOAD) -> tuple[dict[str, np.ndarray], dict]:
    """Bucketed postings and counts for the windows of one segment.

    ``hashes[g]`` is the hash of a window of document ``hash_doc[g]``; ``weights[d]`` the number of
    documents that document ``d`` stands for (itself and its aliases). Postings keep one entry per
    (hash, document), at most ``cap`` documents per hash, sorted by hash: a 16-bit fingerprint
    (``post_fp``) and the document (``post_doc``), found through ``bucket_start`` (u32 offsets of
    ``ceil(postings / load)`` buckets). ``capped_idx``/``capped_cnt`` give the first posting and the
    total number of documents (aliases included) of every hash found in more than ``cap``
    documents; for the others the postings and the aliases are the count.
    """
    order = np.argsort(hashes, kind="stable")
    hs = hashes[order]
    ds = hash_doc[order]
    n = len(hs)
    newkey = np.ones(n, dtype=bool)
    newkey[1:] = hs[1:] != hs[:-1]
    newpair = newkey.copy()
    newpair[1:] |= ds[1:] != ds[:-1]
    hs, ds, newkey = hs[newpair], ds[newpair], newkey[newpair]
    starts = np.flatnonzero(newkey)
    counts = np.diff(np.append(starts, len(hs)))
    totals = np.add.reduceat(weights[ds].astype(np.int64), starts) if len(starts) else np.zeros(0, np.int64)
    rank = np.arange(len(hs)) - np.repeat(starts, counts)
    keep = rank < cap
    hs, ds = hs[keep], ds[keep]
    kstarts = np.flatnonzero(newkey[keep])
    over = counts > cap
    n_entries = len(hs)
    n_buckets = max(1, -(-n_entries // load))
    buckets, fp = bucket_and_fingerprint(hs, n_buckets)
    bucket_start = np.searchsorted(buckets, np.arange(n_buckets + 1, dtype=np.int64)).astype(np.uint32)
    arrays = {"bucket_start": bucket_start, "post_fp": fp, "post_doc": ds.astype(np.uint16),
              "capped_idx": kstarts[over].astype(np.uint32), "capped_cnt": totals[over].astype(np.uint32)}
    return arrays, {"buckets": int(n_buckets), "entries": int(n_entries), "keys": int(len(kstarts))}


def _write(out: Path, docs: Iterator[Document], keep_segments: list[dict], params: dict, stats: BuildStats,
           progress: bool) -> BuildStats:
    t0 = time.perf_counter()
    builder = SegmentBuilder(out, stride=params["stride"], cap=params["cap"], bloom_bits=params["bloom_bits"],
                             store_text=params["store_text"], stats=stats)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="B", unit_scale=True, desc="indexing", file=sys.stderr, dynamic_ncols=True)
    try:
        for doc in docs:
            builder.add(doc)
            if bar is not None:
                bar.update(len(doc.text))
                bar.set_postfix(files=stats.documents, refresh=False)
        builder.flush()
    finally:
        if bar is not None:
            bar.close()
    manifest = {"window": WINDOW, "stride": params["stride"], "cap": params["cap"], "fp_bits": FP_BITS,
                "normalization": NORMALIZATION_VERSION, "hash": HASH_NAME,
                "segments": keep_segments + builder.written}
    write_manifest(out, manifest)
    stats.seconds = time.perf_counter() - t0
    return stats


def build_index(paths_or_docs, out: str | Path, *, stride: int = DEFAULT_STRIDE, cap: int = DEFAULT_CAP,
                bloom_bits: float = DEFAULT_BLOOM_BITS, store_text: bool = False,
                progress: bool = False) -> BuildStats:
    """Index corpus paths and/or ``Document`` objects into the directory ``out`` (replacing it).

    The old index, if any, stays readable until the new manifest replaces it; its segment files
    are removed afterwards. Raises ``UserError`` for a missing corpus path or bad parameters.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the index")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise UserError(f"--out {out} is a non-empty directory that is not an attribution index")
    old = []
    if (out / MANIFEST).exists():
        try:
            old = [s["file"] for s in read_manifest(out)["segments"]]
        except UserError:
            old = []
    stats = BuildStats()
    docs = _as_documents(paths_or_docs, stats)
    first = next(docs, None)  # checks the corpus paths before anything is written
    out.mkdir(parents=True, exist_ok=True)
    params = {"stride": stride, "cap": cap, "bloom_bits": bloom_bits, "store_text": store_text}
    chained = docs if first is None else _chain(first, docs)
    _write(out, chained, [], params, stats, progress)
    for name in old:
        if is_segment_name(name):  # never a path out of the index, whatever the old manifest said
            (out / name).unlink(missing_ok=True)
    return stats


def _chain(first, rest):
    yield first
    yield from rest


def add_to_index(out: str | Path, paths_or_docs, *, store_text: bool = False, progress: bool = False) -> BuildStats:
    """Append new segments for more documents (same parameters as the index)."""
    out = Path(out)
    manifest = read_manifest(out)
    for s in manifest["segments"]:
        open_segment(out / s["file"])  # refuse to extend a damaged index
    stats = BuildStats()
    params = {"stride": manifest["stride"], "cap": manifest["cap"], "bloom_bits": DEFAULT_BLOOM_BITS,
              "store_text": store_text}
    return _write(out, _as_documents(paths_or_docs, stats), manifest["segments"], params, stats, progress)
