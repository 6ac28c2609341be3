"""Finding a query window again in a document's raw text, whitespace aside (no I/O).

Postings name the document, not the offset, so the query path looks for each hit's window in
the document (``Segment.locate``): ``best_raw`` searches the window's longest token in the raw
text and scores each occurrence that holds the window (whitespace aside) by how far the text
around it agrees with the query's. The query's side of that (``window_parts``) is computed once
per query window, not once per document; most occurrences are rejected from the characters next
to them, and for the others one whitespace-free slice on each side serves both the test and the
first comparison with the query. Such slices of ASCII text are made with ``bytes.translate``
(``_flat``: 3-4x faster than ``str.split`` and ``join`` on code). The answer is the same as the
plain scan's (tests/attribution/test_attribution_query_path.py keeps that scan and compares the
two; test_attribution_scan_flat.py keeps main's scan at 628e8c6 and compares every field).
When the compiled module is built (``speedups.C``), the loop over the occurrences runs there
(``_scan_compiled``: no slices, ~0.2-0.4x the time); ``scan_raw_py`` is its Python form, and
test_attribution_speedups.py / test_attribution_scan_flat.py check that both give the same ``RawHit``.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left
from functools import lru_cache

import numpy as np

from .hashing import WINDOW
from .lines import Newlines
from .normalize import _CLASS
from .speedups import C as _C

#: How many occurrences of a window's longest token are looked at before the caller normalises
#: the whole document instead, and how much of the query around the window they are scored on.
MAX_SEEN = 256
CONTEXT = 256
#: ... and how many occurrences that hold the window (whitespace aside) are compared at most.
MAX_SCORED = 16

#: Whether each byte value is whitespace (str.isspace), for ASCII text.
_WS8 = _CLASS[:256] != 0


def is_exact(raw: str) -> bool:
    """Whether the normal form of ``raw`` changes nothing but whitespace (NFC leaves it as is)."""
    return raw.isascii() or unicodedata.is_normalized("NFC", raw)


class DocText:
    """A document's raw text, whether its normal form changes only whitespace (``exact``), and
    whether it is the text indexed (``indexed``: True, False, or None until checked).

    Kept with it for the later queries that hit it (the index caches ``DocText``s): where each
    token searched in it occurs (``occ``: token -> (positions, whether that is all of them),
    ``scan_raw``'s), its normal form when it was normalised whole (``whole``) and the line counts
    of the positions its sources were at (``newlines()``). ``stamp``:
    opaque here, the file's stat when it was read (``segment.FileStamp``; None for a text
    stored in the index), so the index's cache can tell when the file changed."""

    __slots__ = ("raw", "exact", "indexed", "ascii", "occ", "whole", "stamp", "_newlines", "frequent")

    def __init__(self, raw: str, exact: bool | None = None, indexed: bool | None = True, stamp=None):
        self.raw = raw
        self.ascii = raw.isascii()
        self.exact = (self.ascii or is_exact(raw)) if exact is None else exact
        self.indexed = indexed
        self.occ: dict[str, tuple[tuple[int, ...], bool]] = {}
        self.whole: str | None = None
        self.stamp = stamp
        self._newlines = None
        #: how many windows too frequent to scan were found in it from pieces (``frequent``)
        self.frequent = 0

    def newlines(self):
        """The document's ``lines.Newlines`` (made on first use, kept with the text)."""
        if self._newlines is None:
            self._newlines = Newlines(self.raw)
        return self._newlines


#: How many tokens' occurrences a ``DocText`` keeps (then it forgets them all).
MAX_TOKENS = 64
_NONE: tuple[tuple[int, ...], bool] = ((), False)


@lru_cache(maxsize=4096)
def window_parts(norm: str, qp: int) -> tuple[str, int, str, str, str, str]:
    """Of query window ``norm[qp:qp + WINDOW]``: its longest token, where that starts in the
    window, the query's whitespace-free text before and after the token (``CONTEXT`` around
    the window), and the window's whitespace-free text before and after the token."""
    window = norm[qp : qp + WINDOW]
    toks = window.split()
    t = max(range(len(toks)), key=lambda i: len(toks[i]))
    k = 0  # where token t starts in the window
    for i in range(t + 1):
        k = window.index(toks[i], k) + (len(toks[i]) if i < t else 0)
    tok = toks[t]
    q_before = _flat(norm[max(0, qp - CONTEXT) : qp + k])
    q_after = _flat(norm[qp + k + len(tok) : qp + WINDOW + CONTEXT])
    return tok, k, q_before, q_after, "".join(toks[:t]), "".join(toks[t + 1 :])


def best_raw(raw: str, norm: str, qp: int, min_chars: int = 0) -> int | tuple[None, int] | None:
    """Raw position of the longest token of query window ``qp`` at the occurrence whose
    surroundings agree furthest with the query's, whitespace aside (at least the whole window);
    None when there is none, ``(None, end)`` when no occurrence can give a span of ``min_chars``
    (the query agrees with them, whitespace aside, up to ``end`` at most), -1 when the token is
    too frequent to try every occurrence (``MAX_SEEN``). ``scan_raw(...).result``."""
    return scan_raw(raw, norm, qp, min_chars).result


class RawHit:
    """What ``scan_raw`` found: ``result`` (``best_raw``'s answer), the best occurrence's token
    position ``p`` and how many whitespace-free characters agree with the query before (``sb``)
    and after (``sa``) its token, the token positions of every occurrence that holds the window
    (whitespace aside, ``held``) among those looked at, and ``resume``: the raw position the
    scan stopped at (-1 when it looked at every occurrence of the token)."""

    __slots__ = ("result", "p", "sb", "sa", "held", "resume")

    def __init__(self, result, p, sb, sa, held, resume):
        self.result, self.p, self.sb, self.sa, self.held, self.resume = result, p, sb, sa, held, resume


def scan_raw(raw: str, norm: str, qp: int, min_chars: int = 0, occ: dict | None = None) -> RawHit:
    """``best_raw`` and what the scan saw (``RawHit``). ``occ``: the document's ``DocText.occ``.
    The occurrence loop is compiled when ``_speedups`` is built (``_scan_compiled``), else
    ``scan_raw_py``; both give the same ``RawHit``."""
    if _C is not None:
        return _scan_compiled(raw, norm, qp, min_chars, occ)
    return scan_raw_py(raw, norm, qp, min_chars, occ)


def _scan_compiled(raw: str, norm: str, qp: int, min_chars: int = 0, occ: dict | None = None) -> RawHit:
    """``scan_raw`` with its occurrence loop in ``_speedups.scan``."""
    tok, k, q_before, q_after, win_b, win_a = window_parts(norm, qp)
    known, done = occ.get(tok, _NONE) if occ is not None else _NONE
    too_many, best_p, sb, sa, held, resume, reach_b, reach_a, new, done = _C.scan(
        raw, tok, q_before, q_after, len(win_b), len(win_a), known, done, _nonblanks(norm), qp + k, len(norm),
        min_chars, WINDOW, MAX_SEEN, MAX_SCORED)
    _keep_positions(occ, tok, known, new, done)
    if too_many:
        return RawHit(-1, None, 0, 0, held, resume)
    result = _too_short(norm, qp, k, tok, best_p, (reach_b, reach_a), len(held), min_chars)
    return RawHit(result, best_p, sb, sa, held, resume)


def scan_raw_py(raw: str, norm: str, qp: int, min_chars: int = 0, occ: dict | None = None) -> RawHit:
    """``scan_raw`` in Python (any text).

    Every occurrence of the token (overlapping ones too) is counted; whether it holds the
    window is decided from the characters next to it when they differ from the window's, and
    otherwise from the whitespace-free text around it that the agreement with the query compares
    first (``FIRST`` characters beyond the window's), made once for both."""
    tok, k, q_before, q_after, win_b, win_a = window_parts(norm, qp)
    n, nb, na = len(tok), len(q_before), len(q_after)
    need_b, need_a = len(win_b), len(win_a)
    last_b, first_a = win_b[-1:], win_a[:1]
    m_b, m_a = min(need_b + FIRST, nb), min(need_a + FIRST, na)  # (``_agree_before``/``_after``'s)
    best, best_p, seen, reach, held, resume = -1, None, 0, (0, 0), [], -1
    best_sb = best_sa = 0
    settled = min_chars <= WINDOW  # (then _too_short never rejects)
    # the token's positions (overlapping ones too), in order: those ``occ`` keeps, then found
    # with ``str.find``; the ones found are added to ``occ`` when the scan stops (a new tuple
    # replaces the entry, so threads sharing ``occ`` see one or the other)
    known, done = occ.get(tok, _NONE) if occ is not None else _NONE
    new: list[int] = []
    i, n_known, nxt = 0, len(known), known[-1] + 1 if known else 0
    try:
        while True:
            if i < n_known:
                p = known[i]
                i += 1
            elif done:
                break
            else:
                p = raw.find(tok, nxt)
                if p < 0:
                    done = True
                    break
                new.append(p)
                nxt = p + 1
            seen += 1
            if seen > MAX_SEEN:
                return RawHit(-1, None, 0, 0, held, p)
            if len(held) >= MAX_SCORED:
                resume = p
                break
            e = p + n
            if need_b and (p == 0 or (raw[p - 1] != last_b and not raw[p - 1].isspace())):
                continue  # the character before the token is not the window's
            if need_a and (e >= len(raw) or (raw[e] != first_a and not raw[e].isspace())):
                continue
            # whether it holds the window (whitespace aside), from the whitespace-free text around
            # it that the agreement with the query compares first (so it is made once)
            ra = _flat_after(raw, e, m_a)
            if not ra.startswith(win_a):
                continue
            rb = _flat_before(raw, p, m_b)
            if not rb.endswith(win_b):
                continue
            held.append(p)  # the window is here, whitespace aside
            sa = _agree_after(raw, e, q_after, need_a, ra)
            if settled and sa + nb <= best:
                continue  # it cannot beat the best, whose span alone is long enough
            sb = _agree_before(raw, p, q_before, need_b, rb)
            reach = (max(reach[0], sb), max(reach[1], sa))
            if sb + sa > best:
                best, best_p, best_sb, best_sa = sb + sa, p, sb, sa
                if sb == nb and sa == na:
                    resume = p + 1
                    break
                # once the best occurrence alone can give min_chars, how far the others reach
                # (``_too_short``) no longer matters: only whether one agrees further
                settled = settled or (_unflat_fwd(norm, qp + k + n, sa) - _unflat_back(norm, qp + k, sb)
                                      >= min_chars)
    finally:
        _keep_positions(occ, tok, known, new, done)
    result = _too_short(norm, qp, k, tok, best_p, reach, len(held), min_chars)
    return RawHit(result, best_p, best_sb, best_sa, held, resume)


def _keep_positions(occ: dict | None, tok: str, known: tuple, new: list, done: bool) -> None:
    """Add the positions of ``tok`` a scan found (``new``, after the ``known`` ones) to the
    document's ``occ``, and whether that is all of them; a new tuple replaces the entry, so threads
    sharing ``occ`` see one or the other. Past ``MAX_TOKENS`` tokens it forgets them all."""
    if occ is not None and (new or done):
        if len(occ) >= MAX_TOKENS and tok not in occ:
            occ.clear()
        occ[tok] = (known + tuple(new), done)


def holds_window(raw: str, norm: str, qp: int, p: int) -> bool:
    """Whether the occurrence of query window ``qp``'s longest token at raw position ``p``
    holds the window, whitespace aside (``scan_raw``'s test)."""
    tok, k, _, _, win_b, win_a = window_parts(norm, qp)
    window, e = norm[qp : qp + WINDOW], p + len(tok)
    if win_b and (p == 0 or (raw[p - 1] != win_b[-1] and not raw[p - 1].isspace())):
        return False
    if win_a and (e >= len(raw) or (raw[e] != win_a[0] and not raw[e].isspace())):
        return False
    return (((p >= k and raw.startswith(window[:k], p - k)) or _flat_before(raw, p, len(win_b)) == win_b)
            and (raw.startswith(window[k + len(tok):], e) or _flat_after(raw, e, len(win_a)) == win_a))


def _too_short(norm: str, qp: int, k: int, tok: str, best_p, reach, scored: int, min_chars: int):
    """``best_p``, or ``(None, end)`` when no scored occurrence can give ``min_chars``."""
    if best_p is not None and min_chars > WINDOW and scored < MAX_SCORED:
        # a span from any occurrence lies within the query characters that agree with the text
        # around some occurrence, whitespace aside (and starts and ends on a non-blank): when
        # that is shorter than min_chars, nothing can be reported here
        a, b = _unflat_back(norm, qp + k, reach[0]), _unflat_fwd(norm, qp + k + len(tok), reach[1])
        if b - a < min_chars:
            return None, b
    return best_p


#: How many whitespace-free characters around an occurrence are compared first: most
#: occurrences disagree with the query sooner, so the whole ``CONTEXT`` is compared only for the
#: ones that agree that far.
FIRST = 16


def _agree_before(raw: str, p: int, q_before: str, known: int = 0, rb: str | None = None) -> int:
    """How many whitespace-free characters before raw position ``p`` agree with the end of
    ``q_before`` (all of them at most), given that the last ``known`` do (the window's part
    before its token, at an occurrence that holds the window): ``known + FIRST`` are compared
    first (``rb``: those, when the caller has them)."""
    m = min(known + FIRST, len(q_before))
    if rb is None:
        rb = _flat_before(raw, p, m)
    if rb == q_before[len(q_before) - len(rb) :]:
        if len(rb) < m or m == len(q_before):  # the text's start, or all of q_before
            return len(rb)
        rb = _flat_before(raw, p, len(q_before))
        return _common_len(q_before, len(q_before), rb, len(rb), False)
    n = min(known, len(rb))
    while rb[-1 - n] == q_before[-1 - n]:
        n += 1
    return n


def _agree_after(raw: str, e: int, q_after: str, known: int = 0, ra: str | None = None) -> int:
    """How many whitespace-free characters from raw position ``e`` on agree with the start of
    ``q_after`` (all of them at most), given that the first ``known`` do (``ra``: the first
    ``known + FIRST``, when the caller has them)."""
    m = min(known + FIRST, len(q_after))
    if ra is None:
        ra = _flat_after(raw, e, m)
    if ra == q_after[: len(ra)]:
        if len(ra) < m or m == len(q_after):
            return len(ra)
        return _common_len(q_after, 0, _flat_after(raw, e, len(q_after)), 0, True)
    n = min(known, len(ra))
    while ra[n] == q_after[n]:
        n += 1
    return n


#: The ASCII whitespace (``str.isspace``: what ``str.split()`` splits on), as bytes.
_WS_BYTES = bytes(i for i in range(128) if chr(i).isspace())


def _flat(piece: str) -> str:
    """``piece`` without its whitespace (``"".join(piece.split())``): for ASCII text (``isascii``
    of a ``str`` is a flag, not a scan) by ``bytes.translate``, 3-4x faster on code."""
    if piece.isascii():
        return piece.encode("ascii").translate(None, _WS_BYTES).decode("ascii")
    return "".join(piece.split())


def _flat_before(text: str, p: int, m: int) -> str:
    """The last ``m`` (or all) non-whitespace characters of ``text[:p]``, whitespace removed."""
    size = 2 * m + 64
    while True:
        flat = _flat(text[max(0, p - size) : p])
        if len(flat) >= m or size >= p:
            return flat[-m:] if m else ""
        size *= 4


def _flat_after(text: str, p: int, m: int) -> str:
    """The first ``m`` (or all) non-whitespace characters of ``text[p:]``, whitespace removed."""
    size = 2 * m + 64
    while True:
        flat = _flat(text[p : p + size])
        if len(flat) >= m or p + size >= len(text):
            return flat[:m]
        size *= 4


@lru_cache(maxsize=8)
def _nonblanks(text: str) -> list[int]:
    """Positions of the non-blank characters of a query's normal form (cached per query)."""
    if text.isascii():
        return np.flatnonzero(~_WS8[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]).tolist()
    return [i for i, c in enumerate(text) if not c.isspace()]


def _unflat_back(text: str, end: int, n: int) -> int:
    """Where, going back from ``end``, ``n`` non-blank characters of ``text`` start (0 when
    there are fewer)."""
    if n <= 0:
        return end
    nb = _nonblanks(text)
    r = bisect_left(nb, end) - n  # the rank of that character among the non-blanks
    return nb[r] if r >= 0 else 0


def _unflat_fwd(text: str, start: int, n: int) -> int:
    """Where, going on from ``start``, ``n`` non-blank characters of ``text`` end (the end of
    the text when there are fewer)."""
    if n <= 0:
        return start
    nb = _nonblanks(text)
    r = bisect_left(nb, start) + n - 1
    return nb[r] + 1 if r < len(nb) else len(text)


def _common_len(a: str, i: int, b: str, j: int, forward: bool) -> int:
    """Length of the common prefix of a[i:], b[j:] (forward) or common suffix of a[:i], b[:j]."""
    if forward:
        n = min(len(a) - i, len(b) - j)
        return _prefix_len(a[i : i + n], b[j : j + n]) if n > 0 else 0
    n = min(i, j)
    return _prefix_len(a[i - n : i][::-1], b[j - n : j][::-1]) if n > 0 else 0


def _prefix_len(x: str, y: str) -> int:
    """Length of the common prefix of two strings of the same length: chunks of 8, 16, 32, ...
    characters up to the first that differs, halved down to 8, then character by character
    (most calls differ within a few characters)."""
    n = len(x)
    if x == y:
        return n
    lo, step = 0, 8
    while True:
        k = min(step, n - lo)
        if x[lo : lo + k] != y[lo : lo + k]:
            break
        lo += k
        step *= 2
    hi = lo + k
    while hi - lo > 8:
        mid = (lo + hi) // 2
        if x[lo:mid] == y[lo:mid]:
            lo = mid
        else:
            hi = mid
    while x[lo] == y[lo]:
        lo += 1
    return lo
