"""A query window whose longest token is too frequent to scan, found in an ASCII document without
normalising the whole document (no I/O).

When a window's longest token occurs more than ``rawsearch.MAX_SEEN`` times, ``Segment.locate``
used to normalise the whole document and take, of the first 16 occurrences of the window in its
normal form, the one that extends furthest along the query (``_best_in``): 25 ns a character,
1-5 ms for the large files copied queries come from. In an ASCII document the occurrences of a
window ``a0 c1 a1 ... ck ak`` (tokens ``ai``, separators ``ci``: " " or "\\n") in the normal form
are, in the same order, the raw places where ``a0`` is followed by a whitespace run without a line
break (for " ") or with one (for "\\n"), then ``a1``, and so on (a run between two non-blank
characters is a whole run, so it is one separator of the normal form); a window that starts (ends)
with a separator needs that run before (after) the rest, and a non-blank before (after) the run,
since the normal form drops the document's leading and trailing blanks. So a regular expression
finds them in the raw text, and each is scored on a small piece normalised around it
(``tight.tight_piece``: the text the extension can reach, whitespace-aside agreement plus a
margin), which gives the same extension as the whole normal form unless it reaches the piece's
edge, and then the caller normalises the whole document as before.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .hashing import WINDOW
from .rawsearch import RawHit, _agree_after, _agree_before, _unflat_back, _unflat_fwd, window_parts
from .tight import extension, reaches_edge, tight_piece

#: How many occurrences of the window are compared (``segment._best_in``'s limit).
MAX_COMPARED = 16
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e"  # the ASCII line breaks of str.splitlines
_RUN = {" ": "[\t\x1f ]+", "\n": "[\t-\r\x1c-\x1f ]*[\n\r\x0b\x0c\x1c-\x1e][\t-\r\x1c-\x1f ]*"}


@lru_cache(maxsize=1024)
def _pattern(window: str) -> tuple[re.Pattern, str, str]:
    """The raw pattern of a window's tokens and inner separators (each token a group, in the
    order of ``window.split()``), and the separators before its first / after its last token
    ("" when it starts / ends with a token)."""
    parts = re.split("([ \n])", window)  # a0, c1, a1, ..., ck, ak
    lead = parts[1] if parts[0] == "" and len(parts) > 1 else ""
    trail = parts[-2] if parts[-1] == "" and len(parts) > 1 else ""
    toks = parts[2 if lead else 0 : len(parts) - 2 if trail else len(parts)]
    rx = "".join(f"({re.escape(x)})" if i % 2 == 0 else _RUN[x] for i, x in enumerate(toks))
    return re.compile(rx), lead, trail


def _run_ok(raw: str, a: int, b: int, sep: str) -> bool:
    """Whether ``raw[a:b]`` is a whole whitespace run between two non-blanks that the normal form
    keeps as ``sep``."""
    return (a < b and a > 0 and b < len(raw) and not raw[a - 1].isspace() and not raw[b].isspace()
            and (any(c in _BREAKS for c in raw[a:b]) == (sep == "\n")))


def occurrences(raw: str, window: str):
    """The raw match of each occurrence of ``window`` in the normal form of ``raw`` (ASCII), in
    order (overlapping ones too)."""
    pat, lead, trail = _pattern(window)
    pos = 0
    while True:
        m = pat.search(raw, pos)
        if m is None:
            return
        s, e = m.span()
        pos = s + 1
        if lead:
            a = s
            while a > 0 and raw[a - 1].isspace():
                a -= 1
            if not _run_ok(raw, a, s, lead):
                continue
        if trail:
            b = e
            while b < len(raw) and raw[b].isspace():
                b += 1
            if not _run_ok(raw, e, b, trail):
                continue
        yield m


def best_frequent(raw: str, norm: str, qp: int):
    """``locate``'s answer for query window ``qp`` in an ASCII document ``raw`` from small pieces:
    ``(position in the piece, (ra, rb, text, at_start, at_end))`` of the first of the first
    ``MAX_COMPARED`` occurrences that extends furthest, None when there is none, False when a
    piece is not sure to hold an extension (the caller then normalises the whole document)."""
    tok, k, q_before, q_after, win_b, win_a = window_parts(norm, qp)
    toks = norm[qp : qp + WINDOW].split()
    t = max(range(len(toks)), key=lambda i: len(toks[i]))  # the token's group (``window_parts``' choice)
    best, got = -1, None
    for n, m in enumerate(occurrences(raw, norm[qp : qp + WINDOW])):
        if n >= MAX_COMPARED:
            break
        p = m.start(t + 1)
        sb = _agree_before(raw, p, q_before, len(win_b))
        sa = _agree_after(raw, p + len(tok), q_after, len(win_a))
        if _most(norm, qp, k, len(tok), sb, sa, len(q_before), len(q_after)) <= best:
            continue  # it cannot extend further than the best (the first of equals is taken)
        piece = tight_piece(raw, norm, qp, RawHit(p, p, sb, sa, [p], -1))
        if piece is None:
            return False
        ra, rb, text, w, at_start, at_end = piece
        if text[w : w + WINDOW] != norm[qp : qp + WINDOW]:
            return False  # (cannot be: the window is there)
        left, right = extension(norm, qp, text, w)
        if reaches_edge(left, right, w, len(text), qp, len(norm), not at_start, not at_end):
            return False
        if left + right > best:
            best, got = left + right, (w, (ra, rb, text, at_start, at_end))
    return got


def _most(norm: str, qp: int, k: int, n: int, sb: int, sa: int, nb: int, na: int) -> int:
    """At most how far the window at query ``qp`` extends (left + right) at an occurrence whose
    whitespace-free text agrees with the query's for ``sb`` characters before its token (``k``
    into the window) and ``sa`` after it (``n`` long): the extension's non-blanks all agree, so
    it starts at most one blank before the ``sb``-th non-blank back (all of the query when
    ``sb`` is all of ``q_before``, ``nb`` long), and likewise after."""
    left = qp if sb >= nb else min(qp, qp - _unflat_back(norm, qp + k, sb) + 1)
    end = len(norm) if sa >= na else min(len(norm), _unflat_fwd(norm, qp + k + n, sa) + 1)
    return left + max(0, end - qp - WINDOW)
