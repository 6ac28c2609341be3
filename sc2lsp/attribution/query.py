"""Query an attribution index: which spans of a text occur in the corpus, and where.

``AttributionIndex.open(path).check(text, exclude=[workspace])`` returns ``Span`` objects
(``.to_dict()`` is JSON-ready). The query path: normalise the text (keeping raw offsets), hash
every window (stride 1), look them up in the bucketed postings (16-bit fingerprints), group the
hits by document, find each hit's window again in the document's text, verify and extend it to
the maximal common span, then report spans of at least ``min_chars`` normalised characters with
their sources, document counts and labels.
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
from .hashing import HASH_NAME, WINDOW, window_hashes
from . import report
from .normalize import NORMALIZATION_VERSION, normalize, normalize_with_offsets
from .rawsearch import DocText
from .segment import Segment, _common_len
from .spans import Source, Span  # noqa: F401  (re-exported: part of this module's API)
from .store import open_segment, read_manifest
from .tight import reaches_edge

MAX_QUERY_CHARS = 1_000_000
DEFAULT_MIN_CHARS = 50
DEFAULT_MAX_SOURCES = 5
COMMON_THRESHOLD = 10
MAX_CHAINS = 512
_CACHE_CHARS = 256_000_000  # bytes, roughly, of raw text (a document normalised whole also keeps its
# normal form, at most as long, and its token positions: DocText)


class AttributionIndex:
    """A read-only, memory-mapped attribution index (safe to share between threads)."""

    def __init__(self, path: Path, manifest: dict, segments: list[Segment]):
        self.path = path
        self.manifest = manifest
        self.segments = segments
        self.stride = int(manifest["stride"])
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int], DocText | None] = OrderedDict()
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

    def _doc(self, si: int, d: int) -> DocText | None:
        """The text of a document (``DocText``: raw, whether its normal form changes only
        whitespace, and whether it is known to be the text indexed; cached), None when it is
        unavailable or known to have changed. A cached file's text is used while the file's stat
        is the one it had when read; otherwise the file is read (and checked) again."""
        key = (si, d)
        with self._lock:
            cached = key in self._cache
            if cached:
                self._cache.move_to_end(key)
                doc = self._cache[key]
        if cached:
            if doc is None or doc.stamp is None or self.segments[si].stamp_now(d) == doc.stamp[0]:
                return None if doc is None or doc.indexed is False else doc
        got = self.segments[si].read_text(d)
        if got is None:
            doc = None
        else:  # a text known to be the one indexed has the build's flags (no NFC check then)
            exact = self.segments[si].exact_flag(d) if got[1] else None
            doc = DocText(got[0], exact=exact, indexed=True if got[1] else None, stamp=got[2])
        with self._lock:
            old = self._cache.pop(key, None)
            self._cache_chars -= len(old.raw) if old is not None else 0
            self._cache[key] = doc
            self._cache_chars += len(doc.raw) if doc is not None else 0
            while self._cache_chars > _CACHE_CHARS and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_chars -= len(old.raw) if old is not None else 0
        return doc

    def _indexed(self, si: int, d: int, doc: DocText) -> bool:
        """Whether ``doc`` is the text indexed (its file is unchanged): checked once, when it
        first gives a match, so a document that gives none is never hashed."""
        if doc.indexed is None:
            doc.indexed = self.segments[si].unchanged(d, doc.raw)
            if doc.indexed:
                self.segments[si].remember(d, doc.stamp)
        return doc.indexed

    def _excluded(self, si: int, d: int, roots: tuple[str, ...]) -> bool:
        if not roots:
            return False
        p = self.segments[si].abs_path(d)
        return p is not None and any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)

    def _hits(self, qh: np.ndarray, roots: tuple[str, ...], st: dict):
        """Postings of the query windows in every segment, less the excluded documents: rows
        (segment, document, query pos), the documents each row's document stands for (itself and
        its identical copies, outside ``roots``; the first is the row's) where some are excluded
        (``_members`` gives the others), the number of documents holding each window, and which
        windows had their postings capped."""
        counts = np.zeros(len(qh), dtype=np.int64)
        capped = np.zeros(len(qh), dtype=bool)
        rows, groups = [], {}
        for si, seg in enumerate(self.segments):
            qp, doc, capped_total = seg.lookup(qh)  # (qp ascending)
            st["bloom_pass"] += int(np.count_nonzero(qp[1:] != qp[:-1])) + 1 if len(qp) else 0
            st["postings"] += len(qp)
            if len(qp) == 0:
                continue
            full = seg.weights[doc]
            if not roots:  # nothing excluded: a posting's document is its group's original (copies get
                # no postings), counted with its group's weight (the path below gives the same; a test compares)
                seg_cnt = np.bincount(qp, weights=full, minlength=len(qh)).astype(np.int64)
                floor = capped_total
                seg_rows = np.stack([np.full(len(qp), si), doc, qp], axis=1)
            else:  # each posting's group less its excluded copies
                uniq, inv = np.unique(doc, return_inverse=True)
                first, live = np.empty(len(uniq), dtype=np.int64), np.empty(len(uniq), dtype=np.int64)
                for k, d in enumerate(uniq.tolist()):
                    mem = [m for m in seg.members(d) if not self._excluded(si, m, roots)]
                    first[k], live[k] = (mem[0] if mem else -1), len(mem)
                    if mem:
                        groups[(si, mem[0])] = mem
                live_w = live[inv]
                seg_cnt = np.zeros(len(qh), dtype=np.int64)
                np.add.at(seg_cnt, qp, live_w)
                excl = np.zeros(len(qh), dtype=np.int64)
                np.add.at(excl, qp, full - live_w)
                floor = capped_total - excl
                keep = live_w > 0
                seg_rows = np.stack([np.full(int(keep.sum()), si), first[inv][keep], qp[keep]], axis=1)
            big = capped_total > 0  # capped windows: at least the count the build recorded
            seg_cnt[big] = np.maximum(seg_cnt[big], floor[big])
            counts += seg_cnt
            capped |= big
            rows.append(seg_rows)
        allrows = np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)
        return allrows, groups, counts, capped

    def _members(self, groups: dict, si: int, d: int) -> list[int]:
        """The documents a hit in document ``d`` stands for: ``groups``' entry (some copies
        excluded) or its whole group."""
        mem = groups.get((si, d))
        return mem if mem is not None else self.segments[si].members(d)

    def check(self, text: str | bytes, **kw) -> list[Span]:
        """Spans of ``text`` found in the index (``_check``); a damaged index is one ``UserError``."""
        with _damaged(self.path):
            return self._check(text, **kw)

    def _check(self, text: str | bytes, *, exclude: Iterable[str | Path] = (), min_chars: int = DEFAULT_MIN_CHARS,
               max_sources: int = DEFAULT_MAX_SOURCES, common_threshold: int = COMMON_THRESHOLD,
               stats: dict | None = None, time_limit_s: float = 2.0) -> list[Span]:
        """Spans of ``text`` found in the index; documents under ``exclude`` paths never match.

        ``stats``, when given, receives the counts of each stage: ``windows`` hashed,
        ``bloom_pass`` (windows with a posting whose fingerprint matches, summed over segments;
        the name is format 1's), ``postings`` (window hits in the postings), ``chains`` (documents
        hit), ``verified`` (matches found in the documents' text) and ``unavailable`` (documents
        whose text is gone). Verification stops after ``time_limit_s`` (counts are then inexact).
        """
        st = stats if stats is not None else {}
        st.update(windows=0, bloom_pass=0, postings=0, chains=0, verified=0, unavailable=0)
        text = _as_text(text)
        if min_chars < 1 or max_sources < 0:
            raise UserError("min_chars must be >= 1 and max_sources >= 0")
        roots = tuple(str(Path(p).resolve()) for p in exclude)
        if text.isascii():  # (its raw offsets are worked out only for the spans found)
            norm = normalize(text)
            offs = report.AsciiOffsets(text, norm)
        else:
            norm, offs = normalize_with_offsets(text)
        if len(norm) < WINDOW:
            return []
        qh = window_hashes(norm, 1)
        st["windows"] = len(qh)
        allrows, groups, counts, capped = self._hits(qh, roots, st)
        if len(allrows) == 0:
            return []
        chains = _chains(allrows)
        truncated = len(chains) > MAX_CHAINS
        st["chains"] = len(chains)
        matches: list = []  # (qa, qb, si, doc, da, db, verified, Region that da, db index)
        deadline = time.monotonic() + time_limit_s
        # once every hit of a chain lies where enough documents were verified already to list the
        # sources, it is not verified: its documents are counted from the postings instead
        enough = max_sources + 1
        verified_docs = np.zeros(len(qh), dtype=np.int32)
        full = bytearray(len(qh))  # 1 where verified_docs >= enough
        now_capped: list[int] = []
        by_blob: dict[str, list] = {}  # identical files verify once
        for si, d, qps in chains[:MAX_CHAINS]:
            if time.monotonic() > deadline:
                truncated = True
                break
            if all(map(full.__getitem__, qps)):  # (map: no generator frame per chain)
                now_capped += qps
                continue
            members = self._members(groups, si, d)
            blob = self.segments[si].meta(d)["blob"]
            found = by_blob.get(blob)
            if found is None:
                doc = self._doc(si, d)
                if doc is not None:
                    found = self._verify_doc(si, d, doc, norm, [q for q in qps if not full[q]], min_chars)
                    # a file changed since indexing gives unverified matches instead (when it gives any)
                    if (found or self._has_run(qps)) and not self._indexed(si, d, doc):
                        doc = None
                if doc is None:
                    st["unavailable"] += 1
                    found = self._unverified(np.asarray(qps))
                else:
                    now_capped += [q for q in qps if full[q]]  # enough documents verified there: counted
                    if doc.indexed:  # (unchecked when it gave nothing: then it may not stand for the blob)
                        by_blob[blob] = found
                    st["verified"] += len(found)
            for m in found:
                matches += [m[:2] + (si, x) + m[4:] for x in members]
                # the windows inside the match, with the blanks trimmed off its ends put back (a hit
                # whose window ends on a blank is verified there too)
                a = m[0] - (m[0] > 0 and norm[m[0] - 1] in " \n")
                b = max(a, m[1] + (m[1] < len(norm) and norm[m[1]] in " \n") - WINDOW + 1)
                part = verified_docs[a:b]  # (a view)
                part += len(members)
                full[a:b] = (part >= enough).tobytes()
        capped[now_capped] = True
        return self._spans(text, norm, offs, qh, matches, counts, capped, truncated, min_chars, max_sources,
                           common_threshold)

    def _has_run(self, qps: list[int]) -> bool:
        """Whether two hits are exactly a stride apart (``_unverified`` then gives a match)."""
        if len(qps) < 2:
            return False
        s = set(qps)
        return any(q + self.stride in s for q in qps)

    def _unverified(self, qps: np.ndarray) -> list:
        """Matches for a document whose text is gone or changed: runs of 2+ hits exactly a stride
        apart (a copy's indexed windows), trusted without verification."""
        q = np.unique(qps)
        runs = np.split(q, np.flatnonzero(np.diff(q) != self.stride) + 1)
        return [(int(r[0]), int(r[-1]) + WINDOW, None, None, None, None, False, None) for r in runs if len(r) >= 2]

    def _verify_doc(self, si: int, d: int, doc: DocText, norm: str, qps: list[int], min_chars: int = 0) -> list:
        """The verified matches in document ``d`` of segment ``si`` of the query windows at ``qps``:
        each hit not inside a match already found (or a stretch that cannot give ``min_chars``)
        is found again in the text (``Segment.locate``), checked and extended."""
        covered = -1
        found_here: list = []
        regions: dict = {}  # the document's normalised pieces, for all its hits
        for qp in qps:
            if qp < covered:
                continue
            hit = self.segments[si].locate(d, doc, norm, qp, min_chars, regions)
            if hit is not None and hit[0] is None:
                covered = hit[1] - WINDOW + 1  # the windows up to there agree too little
                continue
            found = None if hit is None else self._verify(si, d, doc, norm, qp, hit[0], [hit[1]], regions)
            if found is None:
                continue
            left, right, dp, reg = found
            qa, qb = qp - left, qp + WINDOW + right
            part = norm[qa:qb]
            lead = len(part) - len(part.lstrip())  # spans start and end on a non-blank
            trail = len(part) - len(part.rstrip())
            da, db = dp - left + lead, dp + WINDOW + right - trail
            found_here.append((qa + lead, qb - trail, None, None, da, db, True, reg))
            covered = qb
        return found_here

    def _verify(self, si: int, d: int, doc: DocText, norm: str, qp: int, dpos: int, region: list,
                regions: dict | None = None):
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
                region.append(seg.region(d, doc, lo, hi, regions))
            reg = region[0]
            base, dn = reg.base, reg.text
            dp = dpos - base
            if dp < 0 or dn[dp : dp + WINDOW] != norm[qp : qp + WINDOW]:
                return None
            left = _common_len(norm, qp, dn, dp, forward=False)
            right = _common_len(norm, qp + WINDOW, dn, dp + WINDOW, forward=True)
            if reg.edges is None:
                more_before, more_after = base > 0, base + len(dn) < n_doc
            else:  # a tight region (``Segment._tight`` checked that the extension stays inside it)
                more_before, more_after = not reg.edges[0], not reg.edges[1]
            if not reaches_edge(left, right, dp, len(dn), qp, len(norm), more_before, more_after):
                return left, right, dp, reg
            if reg.edges is not None:
                raise AssertionError("a tight region's extension reaches its edge")
            if grow > 2 * len(doc.raw) + len(norm):  # the region cannot grow any more: a damaged table
                return None
            grow = 2 * grow + 1024
            region.clear()

    def _spans(self, text, norm, offs, qh, matches, counts, capped, truncated, min_chars, max_sources,
               common_threshold):
        """The spans of the query (``report.spans``), their documents estimated from the postings
        (``report.estimates``, after one ``_previous`` per query) where they cannot be counted exactly."""
        def estimate(ranges: list[tuple[int, int]]) -> list[int]:
            return report.estimates(_previous(qh), counts, ranges, self.stride) if ranges else []

        return report.spans(self.segments, self.stride, text, norm, offs, matches, capped, truncated, min_chars,
                            max_sources, common_threshold, estimate, self._source)

    def _source(self, m, qa: int, qb: int, span_text: str | None = None) -> Source:
        """The source of match ``m`` for the span ``[qa, qb)`` of the query (inside the match);
        ``span_text``: the span's raw text in the query, when known.

        The end line counts the line breaks of the document from the span's start to its last
        character. When the span's text is ASCII and the document holds that very text at the
        span's start, the span's last character is the last of that text (the normal form of an
        ASCII stretch is made from its own characters: the same raw text gives the same
        characters at the same places, and a whitespace run or NFC piece beyond it starts at its
        last character at the latest), so the query's text is counted instead of the document's
        raw offset of the end being found (``Region.raw_offset``, the costly part)."""
        mqa, mqb, si, d, da, db, verified, reg = m
        fields = _source_fields(self.segments[si].meta(d))  # (the row is cached by the segment)
        raw = reg.raw if verified else None
        if raw is None:
            return Source(*fields, None, None, verified)
        if span_text is not None and span_text.isascii():
            a = reg.raw_offset(da + (qa - mqa))
            if raw.startswith(span_text, a):
                start_line = reg.line_of(a)
                return Source(*fields, start_line, start_line + span_text.count("\n", 0, len(span_text) - 1), verified)
            b = reg.raw_offset(db - (mqb - qb) - 1) + 1
        else:
            b = reg.raw_offset(db - (mqb - qb) - 1) + 1  # the end first: one prefix serves both
            a = reg.raw_offset(da + (qa - mqa))
        start_line = reg.line_of(a)
        return Source(*fields, start_line, start_line + raw.count("\n", a, max(a, b - 1)), verified)

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


def _source_fields(meta: dict) -> tuple:
    """A document's fields of a ``Source`` (repository to license file), from its table row."""
    return (meta.get("repo"), meta["path"], meta.get("root_path"), meta.get("rev"), meta["blob"], meta.get("license"),
            meta.get("license_source"), bool(meta.get("license_file")))


def _previous(qh: np.ndarray) -> np.ndarray:
    """For each window, the position of the previous window with the same hash (-1: none)."""
    order = np.argsort(qh, kind="stable")
    same = qh[order[1:]] == qh[order[:-1]]
    prev = np.full(len(qh), -1, dtype=np.int64)
    prev[order[1:][same]] = order[:-1][same]
    return prev


def _chains(rows: np.ndarray) -> list[tuple[int, int, list[int]]]:
    """The hits (rows of segment, document, query position) grouped by document: (segment,
    document, its query positions in order), the documents with the most hits first (ties in
    document order). One sort of one key per row: (segment, document, position) packed in bits."""
    qshift = max(1, int(rows[:, 2].max()).bit_length())
    dshift = max(1, int(rows[:, 1].max()).bit_length())
    if int(rows[:, 0].max()).bit_length() + dshift + qshift > 62:  # (not with 16-bit documents)
        return _chains_lexsorted(rows)
    key = (((rows[:, 0] << dshift) | rows[:, 1]) << qshift) | rows[:, 2]
    key.sort()
    doc = key >> qshift  # (segment, document) packed
    cut = np.flatnonzero(doc[1:] != doc[:-1]) + 1
    starts, ends = np.concatenate(([0], cut)), np.concatenate((cut, [len(key)]))
    order = np.argsort(starts - ends, kind="stable").tolist()
    doc_of, qp_of = doc[starts].tolist(), (key & ((1 << qshift) - 1)).tolist()
    mask = (1 << dshift) - 1
    starts, ends = starts.tolist(), ends.tolist()
    return [(doc_of[c] >> dshift, doc_of[c] & mask, qp_of[starts[c] : ends[c]]) for c in order]


def _chains_lexsorted(rows: np.ndarray) -> list[tuple[int, int, list[int]]]:
    """``_chains`` by a sort of the three columns (rows whose packed key would not fit 63 bits)."""
    rows = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]
    starts = np.flatnonzero(np.r_[True, np.any(rows[1:, :2] != rows[:-1, :2], axis=1)])
    ends = np.r_[starts[1:], len(rows)]
    order = np.argsort(starts - ends, kind="stable").tolist()
    seg_of, doc_of, qp_of = (rows[:, j].tolist() for j in range(3))
    starts, ends = starts.tolist(), ends.tolist()
    return [(seg_of[starts[c]], doc_of[starts[c]], qp_of[starts[c] : ends[c]]) for c in order]


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
