"""Part of a document's normal form found around a hit (``Region``), and the raw offsets and line
numbers of its characters, computed only for the sources a check reports (no I/O)."""

from __future__ import annotations

import re

import numpy as np

from .lines import Newlines
from .normalize import _CLASS, normalize_with_offsets
from .rawsearch import _WS8, DocText, is_exact

_ASCII_PAIR = re.compile(r"[\x00-\x7f]{2}")


def _nonblank_positions(piece: str, size: int) -> np.ndarray:
    """Indices of the non-whitespace characters of ``piece[:size]``."""
    part = piece[:size]
    if part.isascii():
        return np.flatnonzero(~_WS8[np.frombuffer(part.encode("ascii"), dtype=np.uint8)])
    cp = np.frombuffer(part.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    return np.flatnonzero(_CLASS[np.minimum(cp, len(_CLASS) - 1)] == 0)


class Region:
    """Part of a document's normal form; raw offsets are computed only for reported sources."""

    __slots__ = ("base", "text", "raw_a", "piece", "raw", "_offsets", "_whole", "_pos", "_exact", "_lines", "_ck",
                 "_every", "_local", "edges", "newlines", "_memo")

    def __init__(self, base: int, text: str, raw_a: int, piece: str, raw: str, ck: np.ndarray | None = None,
                 every: int = 0):
        """``ck``, ``every``: the document's checkpoints (raw offset of every ``every``-th
        normalised character), so a long piece's raw offsets need not be normalised from its start."""
        self.base, self.text, self.raw_a, self.piece, self.raw = base, text, raw_a, piece, raw
        self._offsets, self._whole, self._pos = None, False, None
        self._exact: bool | None = None
        self._lines: int | None = None
        self._ck, self._every, self._local = ck, every, {}
        self._memo: dict[int, int] = {}  # raw_offset's answers (nested spans share their ends)
        #: a tight region's (no global position): whether no non-blank precedes / follows it
        self.edges: tuple[bool, bool] | None = None
        #: the document's line counts (``DocText.newlines``), shared by its regions; None: count
        #: the lines before the region from the document's start
        self.newlines: Newlines | None = None

    @classmethod
    def tight(cls, doc: DocText, ra: int, rb: int, text: str, at_start: bool, at_end: bool) -> "Region":
        """A tight region: ``text`` the normal form of ``doc.raw[ra:rb]`` (``tight.tight_piece``),
        with its edges and the document's shared line counts."""
        reg = cls(0, text, ra, doc.raw[ra:rb], doc.raw)
        reg.edges, reg.newlines = (at_start, at_end), doc.newlines()
        return reg

    def raw_offset(self, k: int) -> int:
        """Raw offset (in the whole document) of the region's normalised character ``k``
        (``_raw_offset``, once per ``k``: the sources of nested spans often end at the same
        place)."""
        got = self._memo.get(k)
        if got is None:
            got = self._memo[k] = self._raw_offset(k)
        return got

    def _raw_offset(self, k: int) -> int:
        """``raw_offset(k)``.

        When the piece's normal form changes only whitespace (ASCII or NFC), the ``m``-th
        non-blank character of the normal form is the ``m``-th non-blank character of the piece
        (a blank: the raw run starts after the non-blank before it), so nothing is normalised:
        the non-blank positions of a prefix of the piece long enough for ``k`` are used.
        Otherwise only a prefix of the piece
        is normalised with offsets, long enough that character ``k``
        is followed by another (a whitespace run cut at the prefix's end is the only part of a
        prefix's normal form that can differ from the whole's), cut between two ASCII characters
        (NFC changes each run of non-ASCII characters with the character before it on its own,
        so such a cut leaves every run whole). In a long piece that prefix starts at the last
        checkpoint before ``k`` that is such a cut (``_from_checkpoint``), not at the piece's start."""
        if self._exact is None:
            self._exact = is_exact(self.piece)
        if self._exact and 0 <= k < len(self.text):
            t = self.text
            m = k - t.count(" ", 0, k) - t.count("\n", 0, k)  # non-blanks before k
            pos = self._pos
            if pos is None or m >= len(pos):  # the positions of a long enough prefix
                size = max(1024, 2 * (k + 2))
                while True:
                    pos = _nonblank_positions(self.piece, size)
                    if len(pos) > m or size >= len(self.piece):
                        break
                    size *= 2
                self._pos = pos
            if t[k] == " " or t[k] == "\n":
                return int(pos[m - 1]) + 1 + self.raw_a
            return int(pos[m]) + self.raw_a
        if self._ck is not None and len(self.piece) > 4 * self._every and (
                self._offsets is None or (not self._whole and k + 1 >= len(self._offsets) - 1)):
            off = self._from_checkpoint(k)
            if off is not None:
                return off
        if self._offsets is None or (not self._whole and k + 1 >= len(self._offsets) - 1):
            size, n = max(1024, 2 * (k + 2)), len(self.piece)
            if 4 * size >= 3 * n:  # most of the piece: all of it
                size = n
            while True:
                cut = _ASCII_PAIR.search(self.piece, min(size, n) - 1)
                size = cut.start() + 1 if cut is not None else n
                offs = normalize_with_offsets(self.piece[:size])[1]
                if size >= n or k + 1 < len(offs) - 1:
                    self._offsets, self._whole = offs, size >= n
                    break
                size *= 2
        return int(self._offsets[k]) + self.raw_a

    def _from_checkpoint(self, k: int) -> int | None:
        """``raw_offset(k)`` from the document's last checkpoint at or before normalised character
        ``base + k`` (inside the piece) whose character and both its neighbours are ASCII: no NFC
        piece straddles it, so the normal form of the text from there is the document's from
        that checkpoint on (its leading whitespace run dropped), and only the text from there is
        normalised. None when there is none."""
        g, raw, every = self.base + k, self.raw, self._every
        j = min(g // every, len(self._ck) - 1)
        while j > 0:
            a = int(self._ck[j])
            if a <= self.raw_a:
                return None
            if raw[a - 1 : a + 2].isascii():  # no NFC piece (a non-ASCII run with the character
                break  # before it) ends or starts there, so character a is its own
            j -= 1
        else:
            return None
        i = g - (j * every + (1 if raw[a].isspace() else 0))  # the run at the checkpoint is dropped
        if i < 0:
            return a  # the checkpoint's character: a whitespace run starting there
        offs, whole = self._local.get(j, (None, False))
        if offs is None or (not whole and i + 1 >= len(offs) - 1):
            size, n = max(1024, 2 * (i + 2)), len(raw) - a
            while True:
                cut = _ASCII_PAIR.search(raw, a + min(size, n) - 1)
                size = cut.start() + 1 - a if cut is not None else n
                offs = normalize_with_offsets(raw[a : a + size])[1]
                if size >= n or i + 1 < len(offs) - 1:
                    self._local[j] = (offs, size >= n)
                    break
                size *= 2
        return int(offs[i]) + a

    def line_of(self, raw_offset: int) -> int:
        """1-based line number of ``raw_offset`` (in the whole document), counting the lines
        before the region once."""
        if self.newlines is not None:
            return self.newlines.before(raw_offset) + 1
        if raw_offset < self.raw_a:
            return self.raw.count("\n", 0, raw_offset) + 1
        if self._lines is None:
            self._lines = self.raw.count("\n", 0, self.raw_a)
        return self._lines + self.raw.count("\n", self.raw_a, raw_offset) + 1
