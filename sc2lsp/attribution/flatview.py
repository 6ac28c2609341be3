"""A whitespace-free view of an ASCII document for the window search (no I/O): prototype."""

from __future__ import annotations

from bisect import bisect_right

from .hashing import WINDOW
from .rawsearch import MAX_SCORED, MAX_SEEN, RawHit, _prefix_len, _too_short, _unflat_back, _unflat_fwd, window_parts

#: The ASCII whitespace (str.isspace) as bytes, deleted to make the view.
WS_BYTES = bytes(i for i in range(128) if chr(i).isspace())
#: Raw characters per block: the view records where each block's whitespace-free text starts.
BLOCK = 1024


class FlatView:
    """``text``: the document's raw text without whitespace; ``starts[i]``: where the
    whitespace-free text of raw block ``i`` (``raw[i * BLOCK:(i + 1) * BLOCK]``) starts in it."""

    __slots__ = ("text", "starts")

    def __init__(self, raw: str):
        b = raw.encode("ascii")
        parts = [b[i : i + BLOCK].translate(None, WS_BYTES) for i in range(0, len(b), BLOCK)]
        starts, n = [], 0
        for x in parts:
            starts.append(n)
            n += len(x)
        self.text = b"".join(parts).decode("ascii")
        self.starts = starts

    def raw_pos(self, raw: str, g: int, tok: str) -> int:
        """The raw position of whitespace-free character ``g`` when ``tok`` is there contiguously
        in the raw text (it is at ``g`` in the view), else -1."""
        i = bisect_right(self.starts, g) - 1
        r0 = i * BLOCK
        r = g - self.starts[i]  # non-blanks of the block before it
        c = raw.find(tok, r0 + r, r0 + BLOCK + len(tok) - 1)
        while c >= 0:
            m = len(raw[r0:c].encode("ascii").translate(None, WS_BYTES))
            if m == r:
                return c
            if m > r:
                return -1
            c = raw.find(tok, c + 1, r0 + BLOCK + len(tok) - 1)
        return -1


def _borders(tok: str) -> bool:
    return any(tok[:i] == tok[-i:] for i in range(1, len(tok)))


def flat_scan(fv: FlatView, raw: str, norm: str, qp: int, min_chars: int = 0) -> RawHit | None:
    """``scan_raw``'s answer from the view; None when it cannot be given from it (the caller scans)."""
    tok, k, q_before, q_after, win_b, win_a = window_parts(norm, qp)
    n, nb, na = len(tok), len(q_before), len(q_after)
    need_b = len(win_b)
    F = fv.text
    if F.count(tok) > MAX_SEEN or _borders(tok):
        return None
    W = win_b + tok + win_a
    best, best_p, reach, held, resume = -1, None, (0, 0), [], -1
    best_sb = best_sa = 0
    settled = min_chars <= WINDOW
    f = F.find(W)
    while f >= 0:
        g = f + need_b
        p = fv.raw_pos(raw, g, tok)
        if p >= 0:
            if len(held) >= MAX_SCORED:
                resume = raw.find(tok, held[-1] + 1)
                break
            held.append(p)
            e = g + n
            sa = _prefix_len(F[e : e + na], q_after[: len(F) - e]) if e < len(F) else 0
            if settled and sa + nb <= best:
                f = F.find(W, f + 1)
                continue
            lo = max(0, g - nb)
            sb = _prefix_len(F[lo:g][::-1], q_before[nb - (g - lo) :][::-1]) if g > 0 else 0
            reach = (max(reach[0], sb), max(reach[1], sa))
            if sb + sa > best:
                best, best_p, best_sb, best_sa = sb + sa, p, sb, sa
                if sb == nb and sa == na:
                    resume = p + 1
                    break
                settled = settled or (_unflat_fwd(norm, qp + k + n, sa) - _unflat_back(norm, qp + k, sb)
                                      >= min_chars)
        f = F.find(W, f + 1)
    else:
        if len(held) == MAX_SCORED:
            resume = raw.find(tok, held[-1] + 1)
    result = _too_short(norm, qp, k, tok, best_p, reach, len(held), min_chars)
    return RawHit(result, best_p, best_sb, best_sa, held, resume)
