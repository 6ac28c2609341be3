"""A small normalised region around one occurrence of a query window in an ASCII document (no I/O).

``Segment.locate`` used to normalise the checkpoint intervals around a hit with the whole query
aligned on both sides (~2,600 normalised characters, most of them checkpoint slack), because the
occurrence's normalised position had to be known. It need not be: the region is only compared
with the query (``_verify``: the maximal common extension of the window) and mapped back to raw
offsets, both relative to the region. So when the occurrence ``scan_raw`` chose is the only one
holding the window in the checkpoint region the old path would normalise (``sole_holder``; then
that path could pick no other), only the raw text the extension can reach is normalised: as many
whitespace-free characters before and after the token as agree with the query there (``sb``,
``sa``: the extension cannot go past the first that disagrees), or the rest of the query when all
``CONTEXT`` of them agree, plus a margin. The piece starts and ends on a non-blank character, so
(the text being ASCII: NFC changes nothing) its normal form is exactly that part of the
document's. The extension, and so every answer, is the same as the old path's; when it reaches
the piece's edge, the caller falls back to the old path.
"""

from __future__ import annotations

import re
from bisect import bisect_left

import numpy as np

from .hashing import WINDOW
from .normalize import _BREAKS, normalize
from .rawsearch import _WS8, RawHit, _common_len, _nonblanks, holds_window, window_parts

#: Whitespace-free characters taken beyond those the extension can reach, on each side.
MARGIN = 16
_BREAK = re.compile("[" + re.escape(_BREAKS) + "]")


def sole_holder(raw: str, norm: str, qp: int, hit: RawHit, r0: int, r1: int) -> bool:
    """Whether ``hit.p`` is the only occurrence of the window's token starting in raw ``[r0, r1)``
    that holds the window (whitespace aside): the scan's occurrences, and those past where it
    stopped, looked at now."""
    if any(r0 <= h < r1 and h != hit.p for h in hit.held):
        return False
    if hit.resume < 0 or hit.resume >= r1:
        return True
    tok = window_parts(norm, qp)[0]
    p = raw.find(tok, max(hit.resume, r0), r1 + len(tok) - 1)
    while p >= 0:
        if p != hit.p and holds_window(raw, norm, qp, p):
            return False
        p = raw.find(tok, p + 1, r1 + len(tok) - 1)
    return True


def _nonblanks_at(raw: str, a: int, b: int) -> np.ndarray:
    """Positions (from ``a``) of the non-blank characters of ``raw[a:b]`` (ASCII)."""
    return np.flatnonzero(~_WS8[np.frombuffer(raw[a:b].encode("ascii"), dtype=np.uint8)])


def _back(raw: str, p: int, m: int) -> tuple[int, bool]:
    """The raw position of the ``m``-th non-blank before ``p`` (``p`` when ``m`` <= 0; the
    document's first non-blank when there are fewer), and whether no non-blank precedes it."""
    if m <= 0:
        return p, False
    size = 2 * m + 64
    while True:
        a = max(0, p - size)
        nb = _nonblanks_at(raw, a, p)
        if len(nb) >= m:
            return a + int(nb[-m]), False
        if a == 0:
            return (int(nb[0]) if len(nb) else p), True
        size *= 4


def _fwd(raw: str, e: int, m: int) -> tuple[int, bool]:
    """The raw position just after the ``m``-th non-blank from ``e`` on (``e`` when ``m`` <= 0;
    after the document's last non-blank when there are fewer), and whether no non-blank
    follows it."""
    if m <= 0:
        return e, False
    size = 2 * m + 64
    while True:
        b = min(len(raw), e + size)
        nb = _nonblanks_at(raw, e, b)
        if len(nb) >= m:
            return e + int(nb[m - 1]) + 1, False
        if b == len(raw):
            return (e + int(nb[-1]) + 1 if len(nb) else e), True
        size *= 4


def tight_piece(raw: str, norm: str, qp: int, hit: RawHit) -> tuple[int, int, str, int, bool, bool] | None:
    """``(ra, rb, text, w, at_start, at_end)``: the normal form ``text`` of ``raw[ra:rb]`` (an
    ASCII document's), which is the document's own between those characters, ``w`` where the
    window starts in it at ``hit.p``'s occurrence (when it is there), and whether no non-blank
    precedes ``ra`` / follows ``rb``. None when the window would start before the piece."""
    tok, k, q_before, q_after, _, _ = window_parts(norm, qp)
    p, e = hit.p, hit.p + len(tok)
    nbl = _nonblanks(norm)
    # the extension cannot pass the first whitespace-free character that disagrees (or the query)
    need_b = hit.sb if hit.sb < len(q_before) else bisect_left(nbl, qp + k)
    need_a = hit.sa if hit.sa < len(q_after) else len(nbl) - bisect_left(nbl, qp + k + len(tok))
    ra, at_start = _back(raw, p, need_b + 1 + MARGIN)
    rb, at_end = _fwd(raw, e, need_a + 1 + MARGIN)
    before = normalize(raw[ra:p])
    sep = ""
    if p > ra and raw[p - 1].isspace():  # the whitespace run before the token: one separator
        run = raw[ra + len(raw[ra:p].rstrip()) : p]
        sep = "\n" if _BREAK.search(run) else " "
    text = before + sep + normalize(raw[p:rb])
    w = len(before) + len(sep) - k
    return None if w < 0 else (ra, rb, text, w, at_start, at_end)


def extension(norm: str, qp: int, text: str, w: int) -> tuple[int, int]:
    """How far the window at query ``qp`` / ``text[w:]`` extends left and right."""
    return (_common_len(norm, qp, text, w, False),
            _common_len(norm, qp + WINDOW, text, w + WINDOW, True))


def reaches_edge(left: int, right: int, w: int, n_text: int, qp: int, n_norm: int,
                 more_before: bool, more_after: bool) -> bool:
    """Whether the extension ``(left, right)`` of the window at ``text[w:]`` (``n_text`` long) /
    query ``qp`` (``n_norm`` long) may go on past the region: it reaches the region's start (and
    the query goes on before, and so does the document) or its end (likewise after)."""
    return ((left == w and left < qp and more_before)
            or (w + WINDOW + right >= n_text - 1 and qp + WINDOW + right < n_norm and more_after))
