"""Line numbers of raw positions in one document, counted from the nearest position asked before.

A reported source's line numbers count the line breaks before its raw offsets; counting from the
document's start costs a pass over everything before them, for every region of every match. A
document's ``Newlines`` (kept with its ``DocText`` for later queries) remembers the count at each
position asked (up to ``MAX_ANCHORS``), so a later position counts only from the nearest of them,
before or after it. Safe to share between threads: an anchor is one ``(position, count)`` tuple,
inserted whole, and each one read is checked to lie on the right side before it is used. A long
stretch of an ASCII text (the first position asked in a large file) is counted with numpy
(``count_newlines``: ~3x faster than ``str.count`` at 100 kB).
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

MAX_ANCHORS = 256
#: Characters from which a stretch of ASCII text is counted with numpy (``str.count`` is faster below).
LONG = 12_000
_CHUNK = 1 << 20


def count_newlines(raw: str, a: int, b: int) -> int:
    """``raw.count("\\n", a, b)`` for ``0 <= a <= b <= len(raw)``."""
    if b - a < LONG or not raw.isascii():
        return raw.count("\n", a, b)
    n = 0
    for c in range(a, b, _CHUNK):  # (bounded temporaries)
        n += int(np.count_nonzero(np.frombuffer(raw[c : min(b, c + _CHUNK)].encode("ascii"), dtype=np.uint8) == 10))
    return n


class Newlines:
    __slots__ = ("raw", "anchors")

    def __init__(self, raw: str):
        self.raw = raw
        self.anchors: list[tuple[int, int]] = [(0, 0)]

    def before(self, p: int) -> int:
        """How many ``"\\n"`` characters ``raw[:p]`` holds (``raw.count("\\n", 0, p)``)."""
        anchors, raw = self.anchors, self.raw
        p = max(0, min(p, len(raw)))
        i = bisect_right(anchors, (p, 1 << 62)) - 1
        lo = anchors[i] if i >= 0 else (0, 0)
        if lo[0] > p:  # (another thread inserted meanwhile: start over from the text's start)
            lo = (0, 0)
        hi = anchors[i + 1] if i + 1 < len(anchors) else None
        if hi is not None and hi[0] >= p and hi[0] - p < p - lo[0]:
            n = hi[1] - count_newlines(raw, p, hi[0])
        else:
            n = lo[1] + count_newlines(raw, lo[0], p)
        if lo[0] != p and len(anchors) < MAX_ANCHORS:
            j = bisect_right(anchors, (p, 1 << 62))
            if j == 0 or anchors[j - 1][0] != p:
                anchors.insert(j, (p, n))
        return n
