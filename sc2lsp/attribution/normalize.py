"""Data Portraits text normalisation, with a map back to raw offsets.

The rules (``NORMALIZATION_VERSION`` names them in every index):

* Unicode NFC;
* a maximal run of whitespace that contains a line break becomes one ``"\\n"``: this collapses
  newline runs, strips the leading whitespace of every line (and trailing whitespace before a
  line break);
* any other maximal whitespace run becomes one ``" "``;
* whitespace at the very start of the text is dropped (leading whitespace of the first line).

So a snippet that was re-indented (tabs for spaces, 2 for 4) or re-spaced (``a  =  b``) has the
same normal form as the original. ``normalize`` is the fast form used to index and to verify;
``normalize_with_offsets`` also returns, for every normalised character, the raw index it came
from; the two always agree (a test checks it on random text). No I/O here.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

NORMALIZATION_VERSION = "dp-ws+nfc-1"

#: What ``str.splitlines`` treats as a line break.
_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_BREAK_RUN = re.compile(rf"\s*[{_BREAKS}]\s*")
_SPACE_RUN = re.compile(r"[^\S\n]+")
_WS_RUN = re.compile(r"\s+")
_BREAK_SET = frozenset(_BREAKS)
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def normalize(text: str) -> str:
    """The normal form of ``text`` (see the module docstring)."""
    text = _nfc(text)
    return _SPACE_RUN.sub(" ", _BREAK_RUN.sub("\n", text)).lstrip()


def _nfc_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """NFC of ``text`` and, when it changed anything, the raw index of every output character.

    NFC only ever touches a run of non-ASCII characters together with the ASCII character just
    before it (a combining mark composes with its starter), so each such piece is normalised on
    its own; inside a piece whose length changed, output characters map to the piece's start.
    """
    if text.isascii():
        return text, None
    out: list[str] = []
    where: list[int] = []
    pos = 0
    for m in _NON_ASCII_RUN.finditer(text):
        a, b = m.start(), m.end()
        if a > pos:
            a -= 1  # the starter a combining mark may compose with
        if a > pos:
            out.append(text[pos:a])
            where.extend(range(pos, a))
        piece = unicodedata.normalize("NFC", text[a:b])
        out.append(piece)
        where.extend(range(a, b) if len(piece) == b - a else [a] * len(piece))
        pos = b
    if pos < len(text):
        out.append(text[pos:])
        where.extend(range(pos, len(text)))
    return "".join(out), where


def normalize_with_offsets(text: str) -> tuple[str, np.ndarray]:
    """``(normal form, offsets)``; ``offsets[i]`` is the raw index of normalised character ``i``.

    ``offsets`` has one extra last element, ``len(text)``. A normalised span ``[a, b)`` (b > a)
    covers the raw span ``[offsets[a], offsets[b - 1] + 1)``; see ``raw_span``.
    """
    nfc, where = _nfc_with_offsets(text)
    pieces: list[str] = []
    keep = np.zeros(len(nfc) + 1, dtype=np.int64)  # +1 at kept chars' starts, -1 at their ends
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in _WS_RUN.finditer(nfc):
        a, b = m.start(), m.end()
        if a > pos:
            pieces.append(nfc[pos:a])
            starts.append(pos)
            ends.append(a)
        if a > 0:  # a run at the very start is dropped
            run = nfc[a:b]
            pieces.append("\n" if any(c in _BREAK_SET for c in run) else " ")
            starts.append(a)
            ends.append(a + 1)
        pos = b
    if pos < len(nfc):
        pieces.append(nfc[pos:])
        starts.append(pos)
        ends.append(len(nfc))
    norm = "".join(pieces)
    np.add.at(keep, np.asarray(starts, dtype=np.int64), 1)
    np.add.at(keep, np.asarray(ends, dtype=np.int64), -1)
    kept = np.flatnonzero(np.cumsum(keep[:-1]) > 0)
    if where is not None:
        kept = np.asarray(where, dtype=np.int64)[kept]
    offsets = np.empty(len(norm) + 1, dtype=np.int64)
    offsets[:-1] = kept
    offsets[-1] = len(text)
    return norm, offsets


def raw_span(offsets: np.ndarray, a: int, b: int) -> tuple[int, int]:
    """The raw ``[start, end)`` of the normalised span ``[a, b)``."""
    if b <= a:
        s = int(offsets[a])
        return s, s
    return int(offsets[a]), int(offsets[b - 1]) + 1


def line_of(text: str, raw_offset: int) -> int:
    """1-based line number of ``raw_offset`` in ``text``."""
    return text.count("\n", 0, raw_offset) + 1
