"""Query an attribution index: which spans of a text occur in the corpus, and where.

``AttributionIndex.open(path).check(text, exclude=[workspace])`` returns ``Span`` objects
(``.to_dict()`` is JSON-ready). The query path: normalise the text (keeping raw offsets), hash
every 50-character window (stride 1), drop windows the Bloom filter rejects, look the rest up
in the bucketed postings, group the hits by (document, offset delta), verify each group against
the document's text and extend it to the maximal common span, then report spans of at least
``min_chars`` normalised characters with their sources, document counts and labels.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
import time
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import UserError
from .build import blob_hash
from .hashing import HASH_NAME, WINDOW, BlockedBloom, bucket_and_fingerprint, window_hashes
from .licenses import looks_like_license_text
from .normalize import NORMALIZATION_VERSION, line_of, normalize, normalize_with_offsets, raw_span
from .spans import Source, Span  # noqa: F401  (re-exported: part of this module's API)
from .store import SegmentFile, open_segment, read_manifest

MAX_QUERY_CHARS = 1_000_000
DEFAULT_MIN_CHARS = 50
DEFAULT_MAX_SOURCES = 5
COMMON_THRESHOLD = 10
MAX_CHAINS = 512
_CACHE_CHARS = 256_000_000  # bytes, roughly


class Segment:
    def __init__(self, sf: SegmentFile):
        h = sf.header
        self.file = sf
        self.stride = int(h["stride"])
        self.cap = int(h["cap"])
        self.n_buckets = int(h["buckets"])
        self.roots: list[str] = h["roots"]
        self.bloom = BlockedBloom(sf.array("bloom"), int(h["bloom_k"]))
        self.bucket_start = sf.array("bucket_start")
        self.entries = sf.array("entries")
        self.capped_idx = sf.array("capped_idx")
        self.capped_cnt = sf.array("capped_cnt")
        self.doc_first = sf.array("doc_first")
        self.meta_off = sf.array("doc_meta_off")
        self.text_off = sf.array("doc_text_off")
        self.nchars = sf.array("doc_nchars")
        self.ckpt_first = sf.array("doc_ckpt_first")
        self.ckpt = sf.array("doc_ckpt")
        self.every = int(h["checkpoint"])
        if not (1 <= self.every <= 1 << 24 and 1 <= self.stride <= 1 << 16 and self.n_buckets >= 1):
            raise ValueError("segment header parameters out of range")
        self.n_docs = len(self.doc_first) - 1
        self._meta: dict[int, dict] = {}
        self._strings: list[str] | None = None

    def meta(self, d: int) -> dict:
        """The document table's row ``d``: path, repo, rev, blob, license, license_source,
        license_file and root_path (absent for documents stored in the index)."""
        m = self._meta.get(d)
        if m is None:
            if self._strings is None:
                self._strings = json.loads(self.file.blob("strings"))
            row = json.loads(self.file.blob("doc_meta", int(self.meta_off[d]), int(self.meta_off[d + 1])))
            path, repo, rev, blob, lic, lic_src, lic_file, root = row
            s = self._strings
            m = {"path": path, "repo": s[repo] if repo >= 0 else None, "rev": s[rev] if rev >= 0 else None,
                 "blob": blob, "license": s[lic] if lic >= 0 else None,
                 "license_source": s[lic_src] if lic_src >= 0 else None, "license_file": bool(lic_file)}
            if root >= 0:
                m["root_path"] = self.roots[root]
            self._meta[d] = m
        return m

    def abs_path(self, d: int) -> str | None:
        m = self.meta(d)
        return f"{m['root_path']}/{m['path']}" if "root_path" in m else None

    def raw_text(self, d: int) -> str | None:
        """The document's text, or None when its file is gone or changed since indexing."""
        a, b = int(self.text_off[d]), int(self.text_off[d + 1])
        if b > a:
            return zlib.decompress(self.file.blob("doc_text", a, b)).decode("utf-8", "surrogatepass")
        p = self.abs_path(d)
        if p is None:
            return None
        try:
            data = Path(p).read_bytes()
        except OSError:
            return None
        if blob_hash(data) != self.meta(d)["blob"]:
            return None
        return data.decode("utf-8", "surrogatepass")

    def region(self, d: int, raw: str, lo: int, hi: int) -> "_Region":
        """The normalised text of document ``d`` covering at least ``[lo, hi)`` (normalised
        positions, clipped to the document): ``text[k]`` is normalised character ``base + k``.
        Only the raw text between two checkpoints is normalised.
        """
        c0, c1 = int(self.ckpt_first[d]), int(self.ckpt_first[d + 1])
        j0 = min(max(lo, 0) // self.every, c1 - c0 - 1)
        j1 = hi // self.every + 1
        raw_a = int(self.ckpt[c0 + j0])
        raw_b = int(self.ckpt[c0 + j1]) if c0 + j1 < c1 else len(raw)
        piece = raw[raw_a:raw_b]
        base = j0 * self.every + (1 if piece[:1].isspace() else 0)  # a leading run is dropped
        return _Region(base, normalize(piece), raw_a, piece)

    def lookup(self, qh: np.ndarray, qpos: np.ndarray, stats: dict | None = None):
        """Postings of the query windows: (query pos, doc, doc pos), and per query position the
        number of documents holding its hash (0 where none)."""
        keep = self.bloom.contains(qh)
        if stats is not None:
            stats["bloom_pass"] = stats.get("bloom_pass", 0) + int(keep.sum())
        qh, qpos_k = qh[keep], qpos[keep]
        bkt, fpq = bucket_and_fingerprint(qh, self.n_buckets)
        lo = self.bucket_start[bkt].astype(np.int64)
        lens = self.bucket_start[bkt + 1].astype(np.int64) - lo
        rep = np.repeat(np.arange(len(qh)), lens)
        ent = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(lo, lens)
        e = self.entries[ent]
        ok = (e >> np.uint32(24)) == fpq[rep]
        rep, ent, e = rep[ok], ent[ok], e[ok]
        g = e & np.uint32(0xFFFFFF)
        doc = np.searchsorted(self.doc_first, g, side="right").astype(np.int64) - 1
        dpos = (g.astype(np.int64) - self.doc_first[doc].astype(np.int64)) * self.stride
        qp = qpos_k[rep]
        count = np.zeros(len(qpos), dtype=np.int64)
        np.add.at(count, qp, 1)
        if len(self.capped_idx) and len(ent):
            j = np.searchsorted(self.capped_idx, ent.astype(np.uint32), side="right").astype(np.int64) - 1
            jj = np.maximum(j, 0)
            big = (j >= 0) & (ent < self.capped_idx[jj].astype(np.int64) + self.cap)
            if big.any():
                np.maximum.at(count, qp[big], self.capped_cnt[jj[big]].astype(np.int64))
        return qp, doc, dpos, count


class _Region:
    """Part of a document's normal form; raw offsets are computed only for reported sources."""

    __slots__ = ("base", "text", "raw_a", "piece", "_offsets")

    def __init__(self, base: int, text: str, raw_a: int, piece: str):
        self.base, self.text, self.raw_a, self.piece, self._offsets = base, text, raw_a, piece, None

    def raw_offset(self, k: int) -> int:
        """Raw offset (in the whole document) of the region's normalised character ``k``."""
        if self._offsets is None:
            self._offsets = normalize_with_offsets(self.piece)[1]
        return int(self._offsets[k]) + self.raw_a


def _common_len(a: str, i: int, b: str, j: int, forward: bool) -> int:
    """Length of the common prefix of a[i:], b[j:] (forward) or common suffix of a[:i], b[:j]."""
    n = min(len(a) - i, len(b) - j) if forward else min(i, j)

    def same(lo: int, k: int) -> bool:
        if forward:
            return a[i + lo : i + lo + k] == b[j + lo : j + lo + k]
        return a[i - lo - k : i - lo] == b[j - lo - k : j - lo]

    length, step = 0, 32
    while True:
        k = min(step, n - length)
        if k <= 0:
            return length
        if same(length, k):
            length += k
            step *= 2
            continue
        lo, hi = 0, k
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if same(length, mid):
                lo = mid
            else:
                hi = mid
        return length + lo


class AttributionIndex:
    """A read-only, memory-mapped attribution index (safe to share between threads)."""

    def __init__(self, path: Path, manifest: dict, segments: list[Segment]):
        self.path = path
        self.manifest = manifest
        self.segments = segments
        self.stride = int(manifest["stride"])
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int], list] = OrderedDict()
        self._cache_chars = 0

    @classmethod
    def open(cls, path: str | Path) -> "AttributionIndex":
        path = Path(path)
        manifest = read_manifest(path)
        for key, want in (("window", WINDOW), ("normalization", NORMALIZATION_VERSION), ("hash", HASH_NAME)):
            if manifest.get(key) != want:
                raise UserError(f"{path} was built with {key}={manifest.get(key)!r}, this sc2lsp uses {want!r}; "
                                "rebuild it with `sc2lsp attribution build`")
        with _damaged(path):
            segs = [Segment(open_segment(path / s["file"])) for s in manifest.get("segments", [])]
            return cls(path, manifest, segs)

    def info(self) -> dict:
        segs = self.manifest.get("segments", [])
        return {"path": str(self.path), "segments": len(segs), "documents": sum(s["docs"] for s in segs),
                "windows": sum(s["windows"] for s in segs), "raw_bytes": sum(s["raw_bytes"] for s in segs),
                "index_bytes": sum(s["bytes"] for s in segs), "window": WINDOW, "stride": self.stride}

    def _doc(self, si: int, d: int) -> str | None:
        """The raw text of a document (cached), None when it is unavailable or changed."""
        key = (si, d)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit[0]
        raw = self.segments[si].raw_text(d)
        with self._lock:
            self._cache[key] = [raw]
            self._cache_chars += len(raw or "")
            while self._cache_chars > _CACHE_CHARS and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_chars -= len(old[0] or "")
        return raw

    def _excluded(self, si: int, d: int, roots: tuple[str, ...]) -> bool:
        if not roots:
            return False
        p = self.segments[si].abs_path(d)
        return p is not None and any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)

    def _hits(self, qh: np.ndarray, roots: tuple[str, ...], st: dict):
        """Postings of the query windows in every segment, less the excluded documents:
        rows (segment, doc, delta = doc pos - query pos, query pos), the number of documents
        holding each window, and which windows had their postings capped."""
        qpos_all = np.arange(len(qh), dtype=np.int64)
        counts = np.zeros(len(qh), dtype=np.int64)
        capped = np.zeros(len(qh), dtype=bool)
        rows = []
        for si, seg in enumerate(self.segments):
            qp, doc, dpos, seg_cnt = seg.lookup(qh, qpos_all, st)
            st["postings"] += len(qp)
            if len(qp) == 0:
                continue
            excl = np.zeros(len(qp), dtype=bool)
            if roots:
                bad = {int(d) for d in np.unique(doc) if self._excluded(si, int(d), roots)}
                if bad:
                    excl = np.isin(doc, list(bad))
            np.subtract.at(seg_cnt, qp[excl], 1)
            counts += np.maximum(seg_cnt, 0)
            capped |= seg_cnt > seg.cap
            keep = ~excl
            rows.append(np.stack([np.full(int(keep.sum()), si), doc[keep], dpos[keep] - qp[keep], qp[keep]], axis=1))
        allrows = np.concatenate(rows) if rows else np.zeros((0, 4), dtype=np.int64)
        return allrows, counts, capped

    def check(self, text: str | bytes, **kw) -> list[Span]:
        """Spans of ``text`` found in the index (``_check``); a damaged index is one ``UserError``."""
        with _damaged(self.path):
            return self._check(text, **kw)

    def _check(self, text: str | bytes, *, exclude: Iterable[str | Path] = (), min_chars: int = DEFAULT_MIN_CHARS,
               max_sources: int = DEFAULT_MAX_SOURCES, common_threshold: int = COMMON_THRESHOLD,
               stats: dict | None = None, time_limit_s: float = 2.0) -> list[Span]:
        """Spans of ``text`` found in the index; documents under ``exclude`` paths never match.

        ``stats``, when given, receives the counts of each stage: ``windows`` hashed,
        ``bloom_pass`` (windows the Bloom filter let through, summed over segments), ``postings``
        (window hits in the postings), ``chains`` (document/offset groups), ``verified`` (groups
        that matched the stored text) and ``unavailable`` (documents whose text is gone).
        Verification stops after ``time_limit_s`` (counts are then marked inexact).
        """
        st = stats if stats is not None else {}
        st.update(windows=0, bloom_pass=0, postings=0, chains=0, verified=0, unavailable=0)
        text = _as_text(text)
        if min_chars < 1 or max_sources < 0:
            raise UserError("min_chars must be >= 1 and max_sources >= 0")
        roots = tuple(str(Path(p).resolve()) for p in exclude)
        norm, offs = normalize_with_offsets(text)
        if len(norm) < WINDOW:
            return []
        qh = window_hashes(norm, 1)
        st["windows"] = len(qh)
        allrows, counts, capped = self._hits(qh, roots, st)
        if len(allrows) == 0:
            return []
        allrows = allrows[np.lexsort((allrows[:, 3], allrows[:, 2], allrows[:, 1], allrows[:, 0]))]
        brk = np.flatnonzero(np.any(allrows[1:, :3] != allrows[:-1, :3], axis=1)) + 1
        chains = np.split(allrows, brk)
        truncated = len(chains) > MAX_CHAINS
        st["chains"] = len(chains)
        chains.sort(key=len, reverse=True)
        matches = []  # (qa, qb, si, doc, da, db, verified, _Region that da, db index)
        deadline = time.monotonic() + time_limit_s
        # once every hit of a chain lies where enough documents were verified already to list the
        # sources, it is not verified: its documents are counted from the postings instead
        enough = max_sources + 1
        verified_docs = np.zeros(len(qh), dtype=np.int32)
        by_blob: dict[tuple[str, int], list] = {}  # identical files verify once
        for ch in chains[:MAX_CHAINS]:
            if time.monotonic() > deadline:
                truncated = True
                break
            if (verified_docs[ch[:, 3]] >= enough).all():
                capped[ch[:, 3]] = True
                continue
            si, d, delta = int(ch[0, 0]), int(ch[0, 1]), int(ch[0, 2])
            same = by_blob.setdefault((self.segments[si].meta(d)["blob"], delta), [])
            if same:
                for m in same[0][1]:
                    matches.append(m[:2] + (si, d) + m[4:])
                    verified_docs[m[0] : max(m[0], m[1] - WINDOW + 1)] += 1
                continue
            raw = self._doc(si, d)
            if raw is None:
                st["unavailable"] += 1
                if len(ch) >= 2:  # unverifiable (file gone or changed): trust a chain of 2+ hashes
                    qa, qb = int(ch[0, 3]), int(ch[-1, 3]) + WINDOW
                    matches.append((qa, qb, si, d, None, None, False, None))
                continue
            found_here = self._verify_chain(si, d, raw, norm, ch, delta, verified_docs)
            same.append((d, found_here))
            matches += found_here
            st["verified"] += len(found_here)
        return self._spans(text, norm, offs, qh, matches, counts, capped, truncated, min_chars, max_sources,
                           common_threshold)

    def _verify_chain(self, si: int, d: int, raw: str, norm: str, ch: np.ndarray, delta: int,
                      verified_docs: np.ndarray) -> list:
        """The verified matches of one chain (document ``d`` of segment ``si`` at offset ``delta``
        from the query): each hit not inside a match already found is checked against the text and
        extended; ``verified_docs`` counts, per query window, the documents verified there."""
        covered = -1
        found_here: list = []
        region: list = []  # the chain's region, once normalised
        for qp in ch[:, 3].tolist():
            if qp < covered:
                continue
            found = self._verify(si, d, raw, norm, qp, qp + delta, region)
            if found is None:
                continue
            left, right, dp, reg = found
            qa, qb = qp - left, qp + WINDOW + right
            lead = len(norm[qa:qb]) - len(norm[qa:qb].lstrip())  # spans start and end on a non-blank
            trail = len(norm[qa:qb]) - len(norm[qa:qb].rstrip())
            da, db = dp - left + lead, dp + WINDOW + right - trail
            found_here.append((qa + lead, qb - trail, si, d, da, db, True, reg))
            verified_docs[qa : max(qa, qb - WINDOW + 1)] += 1
            covered = qb
        return found_here

    def _verify(self, si: int, d: int, raw: str, norm: str, qp: int, dpos: int, region: list):
        """Check window ``qp`` of the query against position ``dpos`` of document ``d`` and extend
        it both ways: ``(left, right, dp, region)`` or None.

        The region of the document normalised is the part aligned with the whole query (so the
        extension cannot leave it); ``region`` caches it for the other hits of the same chain.
        It grows if the extension still reaches its edge (or the document's ends)."""
        seg = self.segments[si]
        n_doc = int(seg.nchars[d])
        grow = 0
        while True:
            if not region:
                lo = dpos - qp - 2 - grow
                hi = dpos - qp + len(norm) + 2 + grow
                region.append(seg.region(d, raw, lo, hi))
            reg = region[0]
            base, dn = reg.base, reg.text
            dp = dpos - base
            if dp < 0 or dn[dp : dp + WINDOW] != norm[qp : qp + WINDOW]:
                return None
            left = _common_len(norm, qp, dn, dp, forward=False)
            right = _common_len(norm, qp + WINDOW, dn, dp + WINDOW, forward=True)
            open_left = left == dp and left < qp and base > 0
            open_right = dp + WINDOW + right >= len(dn) - 1 and qp + WINDOW + right < len(norm) and base + len(dn) < n_doc
            if not (open_left or open_right):
                return left, right, dp, reg
            if grow > 2 * len(raw) + len(norm):  # the region cannot grow any more: a damaged table
                return None
            grow = 2 * grow + 1024
            region.clear()

    def _spans(self, text, norm, offs, qh, matches, counts, capped, truncated, min_chars, max_sources,
               common_threshold):
        groups: dict[tuple[int, int], list] = {}
        for m in matches:
            if m[1] - m[0] >= min_chars:
                groups.setdefault((m[0], m[1]), []).append(m)
        kept: list[tuple[tuple[int, int], set]] = []
        out: list[Span] = []
        for (qa, qb) in sorted(groups, key=lambda r: (r[0] - r[1], r[0])):
            cover = {(m[2], m[3]) for m in matches if m[0] <= qa and m[1] >= qb}
            outer = [c for (a, b), c in kept if a <= qa and qb <= b]
            if outer and len(cover) <= max(len(c) for c in outer):
                continue
            kept.append(((qa, qb), cover))
            exact = not truncated and qb - qa >= WINDOW + self.stride - 1 and not capped[qa : qb - WINDOW + 1].any()
            n_docs = len(cover)
            if not exact:
                n_docs = max(n_docs, self._estimate(qh, counts, qa, qb))
            firsts: dict[tuple[int, int], tuple] = {}
            for m in sorted((m for m in matches if m[0] <= qa and m[1] >= qb), key=lambda m: (not m[6], m[2], m[3])):
                firsts.setdefault((m[2], m[3]), m)
            metas = [self.segments[si].meta(d) for si, d in firsts]
            srcs = [self._source(m, qa, qb) for m in list(firsts.values())[:max_sources]]
            lic_text = any(mt.get("license_file") for mt in metas) or looks_like_license_text(norm[qa:qb])
            kind = "license_text" if lic_text else ("common" if n_docs > common_threshold else "copy")
            start, end = raw_span(offs, qa, qb)
            out.append(Span(start, end, qb - qa, text[start:end], kind, n_docs, exact,
                            sorted({mt.get("license") for mt in metas}, key=lambda x: (x is None, x or "")), srcs))
        out.sort(key=lambda s: (s.start, -s.end))
        return out

    def _estimate(self, qh: np.ndarray, counts: np.ndarray, qa: int, qb: int) -> int:
        """Documents holding the span ``[qa, qb)``, from the postings' counts: each such document
        has an indexed window every ``stride`` positions, so it is counted once per stride of
        distinct windows (a periodic span, like a line of dashes, has only one)."""
        n_win = max(1, qb - qa - WINDOW + 1)
        _, first = np.unique(qh[qa : qa + n_win], return_index=True)
        total = int(counts[qa + first].sum())
        return round(total / max(1.0, len(first) / self.stride))

    def _source(self, m, qa: int, qb: int) -> Source:
        """The source of match ``m`` for the span ``[qa, qb)`` of the query (inside the match)."""
        mqa, mqb, si, d, da, db, verified, reg = m
        meta = self.segments[si].meta(d)
        start_line = end_line = None
        raw = self._doc(si, d) if verified else None
        if raw is not None:
            a, b = reg.raw_offset(da + (qa - mqa)), reg.raw_offset(db - (mqb - qb) - 1) + 1
            start_line = line_of(raw, a)
            end_line = start_line + raw.count("\n", a, max(a, b - 1))
        return Source(meta.get("repo"), meta["path"], meta.get("root_path"), meta.get("rev"), meta["blob"],
                      meta.get("license"), meta.get("license_source"), bool(meta.get("license_file")),
                      start_line, end_line, verified)

    def overlap(self, text: str | bytes, *, exclude: Iterable[str | Path] = (),
                min_chars: int = DEFAULT_MIN_CHARS) -> list[list[int]]:
        """Data Portraits' answer: merged ``[start, end]`` raw spans of ``text`` found in the index."""
        spans = sorted((s.start, s.end) for s in self.check(text, exclude=exclude, min_chars=min_chars,
                                                             max_sources=0))
        merged: list[list[int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return merged


@contextlib.contextmanager
def _damaged(path: Path):
    """Any failure reading index data (a damaged header or section) becomes one ``UserError``."""
    try:
        yield
    except UserError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError, RecursionError,
            ZeroDivisionError, zlib.error, struct.error, UnicodeError, MemoryError) as e:
        raise UserError(f"attribution index {path} is damaged ({type(e).__name__}: {str(e)[:120]}); "
                        "rebuild it with `sc2lsp attribution build`") from None


def _as_text(text) -> str:
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"the text to check is not valid UTF-8 (byte {e.start}); give UTF-8 text") from e
    if not isinstance(text, str):
        raise UserError(f"the text to check must be a string, not {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise UserError(f"the text to check has {len(text)} characters; the limit is {MAX_QUERY_CHARS}")
    return text
