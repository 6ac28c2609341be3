"""Data Portraits text normalisation, with a map back to raw offsets.

The rules (``NORMALIZATION_VERSION`` names them in every index):

* Unicode NFC;
* a maximal run of whitespace that contains a line break becomes one ``"\\n"``: this collapses
  newline runs, strips the leading whitespace of every line (and trailing whitespace before a
  line break);
* any other maximal whitespace run becomes one ``" "``;
* whitespace at the very start and end of the text is dropped.

Equivalently: split into lines (``str.splitlines``), collapse each line's whitespace runs to one
space and strip it, drop blank lines, join with ``"\\n"``.

So a snippet that was re-indented (tabs for spaces, 2 for 4) or re-spaced (``a  =  b``) has the
same normal form as the original. ``normalize`` is the fast form used to index and to verify;
``normalize_with_offsets`` also returns, for every normalised character, the raw index it came
from; the two always agree (a test checks it on random text). No I/O here.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from .speedups import C as _C

NORMALIZATION_VERSION = "dp-ws+nfc-2"

#: What ``str.splitlines`` treats as a line break.
_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def normalize(text: str) -> str:
    """The normal form of ``text`` (see the module docstring); its whitespace by the compiled
    ``_speedups.normalize_ws`` when that is built (the same answer)."""
    if _C is not None:
        return _C.normalize_ws(_nfc(text))
    return "\n".join(filter(None, [" ".join(line.split()) for line in _nfc(text).splitlines()]))


def _nfc_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """NFC of ``text`` and, when it changed anything, the raw index of every output character.

    NFC only ever touches a run of non-ASCII characters together with the ASCII character just
    before it (a combining mark composes with its starter), so each such piece is normalised on
    its own; inside a piece whose length changed, output characters map to the piece's start.
    """
    if text.isascii() or unicodedata.is_normalized("NFC", text):
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


#: 1 = whitespace, 3 = line break, for code points below 0x3001 (none above is whitespace).
_CLASS = np.zeros(0x3002, dtype=np.uint8)
_CLASS[[c for c in range(0x3001) if chr(c).isspace()]] = 1
_CLASS[[ord(c) for c in _BREAKS]] = 3


def normalize_with_offsets(text: str) -> tuple[str, np.ndarray]:
    """``(normal form, offsets)``; ``offsets[i]`` is the raw index of normalised character ``i``.

    ``offsets`` has one extra last element, ``len(text)``. A normalised span ``[a, b)`` (b > a)
    covers the raw span ``[offsets[a], offsets[b - 1] + 1)``; see ``raw_span``. Vectorised: a
    whitespace run is kept as its first character, turned into ``\n`` or ``" "``.
    """
    nfc, where = _nfc_with_offsets(text)
    if nfc.isascii():
        cp = np.frombuffer(nfc.encode("ascii"), dtype=np.uint8).astype(np.uint32)
    else:
        cp = np.frombuffer(nfc.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint32)
    cls = _CLASS[np.minimum(cp, 0x3001)]
    ws = cls != 0
    brk = cls == 3
    run_start = ws.copy()
    run_start[1:] &= ~ws[:-1]
    run_id = np.cumsum(run_start) - 1
    has_break = np.bincount(run_id[brk], minlength=int(run_start.sum())) > 0
    keep = ~ws | run_start
    if len(keep) and ws[0]:
        keep[0] = False  # the runs at the very start and end are dropped
    if len(keep) and ws[-1]:
        keep[np.flatnonzero(run_start)[-1]] = False
    idx = np.flatnonzero(keep)
    out = cp[idx]
    starts = run_start[idx]
    out[starts] = np.where(has_break[run_id[idx[starts]]], 10, 32)
    if len(out) == 0 or int(out.max()) < 128:
        norm = out.astype(np.uint8).tobytes().decode("ascii")
    else:
        norm = out.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
    offsets = np.empty(len(norm) + 1, dtype=np.int64)
    offsets[:-1] = idx if where is None else np.asarray(where, dtype=np.int64)[idx]
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
