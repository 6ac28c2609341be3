"""From verified matches to the answer: the spans of a query, their document counts, labels and
sources (``AttributionIndex._spans``).

A span is the range of a match of at least ``min_chars``; the documents holding it are those
with a match covering it (each counted once, with its first such match). Ranges are taken
longest first; a range inside a kept one that no more documents cover is dropped. The work is
done once per query where it can be: which matches cover which range (one numpy pass for all of
them), each document's license fields (once per document), where the capped windows are (a
sorted list), and whether the query reads like a license at all (a range's text can only when
the whole query's does).
"""

from __future__ import annotations

from bisect import bisect_left
from heapq import nsmallest
from typing import Callable

import numpy as np

from .hashing import WINDOW
from .licenses import looks_like_license_text
from .normalize import _CLASS, raw_span
from .spans import Source, Span

#: Ranges x matches up to which the covering matches are found in plain Python (numpy above).
SMALL_COVER = 96
#: Booleans per numpy block of the covering test (ranges x matches).
_BLOCK = 1 << 18


_BLANK = _CLASS[:128] != 0  # ASCII whitespace


class AsciiOffsets:
    """``normalize_with_offsets(text)[1]`` of an ASCII ``text`` (``norm`` its normal form), worked
    out only at the positions asked (a query's spans' ends): most queries have no span. ASCII is
    its own NFC, so the ``m``-th non-blank character of the normal form is the ``m``-th of the
    text, and a blank (a whitespace run) starts just after the non-blank before it (a run at the
    very start is dropped, so there is one)."""

    __slots__ = ("text", "norm", "_nonblank", "_blanks")

    def __init__(self, text: str, norm: str):
        self.text, self.norm = text, norm
        self._nonblank: list[int] | None = None
        #: blanks of ``norm`` before each position (prefix sums): counting them per lookup was
        #: O(k) each, 8.5 s of a 953,000-character check with 90,000 lookups
        self._blanks: np.ndarray | None = None

    def __getitem__(self, k: int) -> int:
        norm = self.norm
        if k == len(norm):
            return len(self.text)
        if not 0 <= k < len(norm):
            raise IndexError(k)
        if self._nonblank is None:
            self._nonblank = np.flatnonzero(~_BLANK[np.frombuffer(self.text.encode("ascii"), dtype=np.uint8)]).tolist()
        if self._blanks is None:
            codes = np.frombuffer(norm.encode("ascii"), dtype=np.uint8)
            self._blanks = np.concatenate(([0], np.cumsum((codes == 32) | (codes == 10), dtype=np.int64)))
        m = k - int(self._blanks[k])  # non-blanks before k
        if norm[k] == " " or norm[k] == "\n":
            return self._nonblank[m - 1] + 1
        return self._nonblank[m]


def covering(ranges: list[tuple[int, int]], lo: list[int], hi: list[int]) -> list[list[int]]:
    """For each range ``(qa, qb)``, the indices ``i`` (ascending) with ``lo[i] <= qa`` and
    ``hi[i] >= qb``."""
    m = len(lo)
    if len(ranges) * m <= SMALL_COVER:
        pairs = list(enumerate(zip(lo, hi)))
        return [[i for i, (a, b) in pairs if a <= qa and b >= qb] for qa, qb in ranges]
    lo_a, hi_a = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    ra = np.fromiter((r[0] for r in ranges), dtype=np.int64, count=len(ranges))
    rb = np.fromiter((r[1] for r in ranges), dtype=np.int64, count=len(ranges))
    out: list[list[int]] = []
    step = max(1, _BLOCK // max(1, m))
    for s in range(0, len(ranges), step):
        a, b = ra[s : s + step], rb[s : s + step]
        rows, cols = np.nonzero((lo_a <= a[:, None]) & (hi_a >= b[:, None]))  # row-major: by range, then index
        bounds = np.searchsorted(rows, np.arange(len(a) + 1)).tolist()
        cols_l = cols.tolist()
        out += [cols_l[bounds[j] : bounds[j + 1]] for j in range(len(a))]
    return out


def _documents(segments, matches: list) -> tuple[list, list, list]:
    """Per match: its document's key ``(segment, document)``, license-file flag and license (from
    the document table, once per document)."""
    key, lic_file, lic = [], [], []
    seen: dict[tuple[int, int], tuple[bool, str | None]] = {}
    for m in matches:
        k = (m[2], m[3])
        got = seen.get(k)
        if got is None:
            meta = segments[m[2]].meta(m[3])
            got = seen[k] = (bool(meta.get("license_file")), meta.get("license"))
        key.append(k)
        lic_file.append(got[0])
        lic.append(got[1])
    return key, lic_file, lic


def estimates(prev: np.ndarray, counts: np.ndarray, ranges: list[tuple[int, int]], stride: int) -> list[int]:
    """Documents holding each span ``[qa, qb)`` of ``ranges``, from the postings' counts: each such
    document has an indexed window every ``stride`` positions, so it is counted once per stride
    of distinct windows (a periodic span, like a line of dashes, has only one). ``prev``:
    ``query._previous`` of the query's window hashes (a window is the first of its hash in the
    span when the previous one is before the span). All ranges in one numpy pass over the
    windows they cover."""
    if not ranges:
        return []
    n = len(prev)
    qa = np.fromiter((r[0] for r in ranges), dtype=np.int64, count=len(ranges))
    qb = np.fromiter((r[1] for r in ranges), dtype=np.int64, count=len(ranges))
    end = np.minimum(qa + np.maximum(1, qb - qa - WINDOW + 1), n)  # the span's windows: [qa, end)
    lo, hi = int(qa.min()), max(int(qa.min()), int(end.max()))
    totals, firsts = np.zeros(len(ranges), dtype=np.int64), np.zeros(len(ranges), dtype=np.int64)
    if (hi - lo) * len(ranges) > 4 * _BLOCK:  # spans spread over a long query: each over its own windows
        # (one matrix of ranges x the windows between the first and the last span was 10 s for a
        # 953,000-character query with 5,364 spans)
        for i, (a, e) in enumerate(zip(qa.tolist(), end.tolist())):
            if e > a:
                sel = prev[a:e] < a
                totals[i] = int(counts[a:e][sel].sum())
                firsts[i] = int(sel.sum())
        return [round(t / max(1.0, k / stride)) for t, k in zip(totals.tolist(), firsts.tolist())]
    cols, p, c = np.arange(lo, hi), prev[lo:hi], counts[lo:hi]
    step = max(1, _BLOCK // max(1, hi - lo))
    for s in range(0, len(ranges), step):
        a, e = qa[s : s + step, None], end[s : s + step, None]
        sel = (cols >= a) & (cols < e) & (p < a)
        totals[s : s + step] = (sel * c).sum(axis=1)
        firsts[s : s + step] = sel.sum(axis=1)
    return [round(t / max(1.0, k / stride)) for t, k in zip(totals.tolist(), firsts.tolist())]


def spans(segments, stride: int, text: str, norm: str, offs, matches: list, capped: np.ndarray,
          truncated: bool, min_chars: int, max_sources: int, common_threshold: int,
          estimate: Callable[[list[tuple[int, int]]], list[int]],
          source: Callable[[tuple, int, int, str], Source]) -> list[Span]:
    """The spans of the query (``AttributionIndex._spans``): ``offs``: ``normalize_with_offsets``'
    offsets (or ``AsciiOffsets``); ``matches`` are ``_check``'s (qa, qb,
    segment, document, da, db, verified, region); ``estimate(ranges)`` counts the documents of
    spans from the postings (``estimates``), ``source(match, qa, qb, span's raw text)`` builds a
    source."""
    matches = [m for m in matches if m[1] - m[0] >= min_chars]  # only these can cover a span
    if not matches:
        return []
    ranges = sorted({(m[0], m[1]) for m in matches}, key=lambda r: (r[0] - r[1], r[0]))
    cover = covering(ranges, [m[0] for m in matches], [m[1] for m in matches])
    key, lic_file, lic = _documents(segments, matches)
    unverified = [not m[6] for m in matches]
    capped_at = np.flatnonzero(capped).tolist()
    exact = [not truncated and qb - qa >= WINDOW + stride - 1
             and bisect_left(capped_at, qb - WINDOW + 1) == bisect_left(capped_at, qa) for qa, qb in ranges]
    guess = iter(estimate([r for r, x in zip(ranges, exact) if not x]))
    license_like: bool | None = None  # whether the whole query reads like a license (asked once, when needed)
    kept: list[tuple[int, int, int]] = []  # (qa, qb, documents covering it)
    out: list[Span] = []
    for (qa, qb), cov, ex in zip(ranges, cover, exact):
        n_docs = 0 if ex else next(guess)
        firsts: dict[tuple[int, int], int] = {}  # covering documents: their first match
        for i in cov:
            firsts.setdefault(key[i], i)
        n = len(firsts)
        for a, b, c in kept:
            if a <= qa and qb <= b and n <= c:
                break
        else:
            kept.append((qa, qb, n))
            n_docs = max(n, n_docs)
            if n <= max_sources:
                shown = sorted([(unverified[i], k, i) for k, i in firsts.items()])
            else:
                shown = nsmallest(max_sources, [(unverified[i], k, i) for k, i in firsts.items()])
            start, end = raw_span(offs, qa, qb)
            span_text = text[start:end]
            srcs = [source(matches[i], qa, qb, span_text) for _, _, i in shown]
            lic_text = any(lic_file[i] for i in firsts.values())
            if not lic_text:
                if license_like is None:
                    license_like = looks_like_license_text(norm)
                lic_text = license_like and looks_like_license_text(norm[qa:qb])
            kind = "license_text" if lic_text else ("common" if n_docs > common_threshold else "copy")
            licenses = sorted({lic[i] for i in firsts.values()}, key=lambda x: (x is None, x or ""))
            out.append(Span(start, end, qb - qa, span_text, kind, n_docs, ex, licenses, srcs))
    out.sort(key=lambda s: (s.start, -s.end))
    return out
