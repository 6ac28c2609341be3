"""Token healing: which prompt tokens to take back, and which tokens may replace them.

A prompt that ends mid-token (the user typed ``import `` or ``self.na``) is tokenized
differently from the same text in training: there ``self.name`` is one or two tokens, here the
prompt ends in ``self``, ``.``, ``na`` and the model has rarely seen ``na`` followed by ``me``.
Token healing removes the last token(s) of the prompt and makes the first generated token(s)
start with the removed text (``name`` is allowed after ``self.``, ``numbers`` is not), then
strips the removed text from the output.

Pure functions over token byte strings ("pieces"); the backend supplies the vocabulary's pieces
once per model and applies the constraint to the logits.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence


class PieceTable:
    """The vocabulary's token pieces (bytes), sorted, to find the tokens that start with some bytes.

    Tokens with an empty piece (special/control tokens) are never allowed.
    """

    def __init__(self, pieces: Sequence[bytes]):
        self.pieces = list(pieces)
        order = sorted((p, i) for i, p in enumerate(self.pieces) if p)
        self._sorted = [p for p, _ in order]
        #: token ids in the sorted order of their pieces; ``order[lo:hi]`` is a ``starting_with`` range
        self.order = [i for _, i in order]
        self._by_piece: dict[bytes, list[int]] = {}
        for p, i in order:
            self._by_piece.setdefault(p, []).append(i)

    def starting_with(self, prefix: bytes) -> tuple[int, int]:
        """``(lo, hi)``: the tokens whose piece starts with ``prefix`` are ``order[lo:hi]``."""
        lo = bisect.bisect_left(self._sorted, prefix)
        hi = lo
        # the end of the range: the first piece that no longer starts with prefix
        if prefix:
            hi = bisect.bisect_left(self._sorted, _successor(prefix), lo)
        else:
            hi = len(self._sorted)
        return lo, hi

    def prefixes_of(self, text: bytes) -> list[int]:
        """Tokens whose piece is a proper, non-empty prefix of ``text``."""
        out: list[int] = []
        for n in range(1, len(text)):
            out.extend(self._by_piece.get(text[:n], ()))
        return out

    def extends(self, text: bytes, strict: bool = True) -> bool:
        """Whether some token's piece starts with ``text`` (and, if ``strict``, is longer)."""
        lo, hi = self.starting_with(text)
        return hi - lo > (len(self._by_piece.get(text, ())) if strict else 0)

    def allowed(self, removed: bytes) -> tuple[tuple[int, int], list[int]]:
        """The tokens that may come next while ``removed`` is not yet regenerated: a range of
        ``order`` (pieces starting with ``removed``) and the ids whose piece is a proper prefix
        of it (the removed text may come back in several tokens)."""
        return self.starting_with(removed), self.prefixes_of(removed)


def _successor(prefix: bytes) -> bytes:
    """The smallest byte string greater than every string starting with ``prefix``."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\xff" * (len(prefix) + 1)  # only reached for all-0xFF prefixes
    p[-1] += 1
    return bytes(p)


@dataclass(frozen=True)
class Heal:
    """``keep`` prompt tokens are evaluated; ``removed`` (the pieces of the others) must be
    regenerated first and is stripped from the output."""

    keep: int
    removed: bytes = b""

    @property
    def active(self) -> bool:
        return bool(self.removed)


def plan_heal(tokens: Sequence[int], table: PieceTable, max_bytes: int, max_tokens: int = 3) -> Heal:
    """How many trailing tokens of ``tokens`` to take back.

    Only tokens wholly inside the last ``max_bytes`` bytes of the prompt may go (the caller
    passes the length of the text that may be healed, e.g. the prefix after the path line), at
    most ``max_tokens`` of them, never a special token. Of those, the longest run whose text
    some vocabulary token extends (is longer than and starts with) is removed; when no token
    extends the last piece (``)`` followed by nothing longer) nothing is removed. A run of two
    or more tokens also counts when one token spells it exactly (the tokenizer split it, the
    model may produce it whole).
    """
    best = Heal(len(tokens))
    removed = b""
    for k in range(1, min(max_tokens, len(tokens)) + 1):
        piece = table.pieces[tokens[-k]] if 0 <= tokens[-k] < len(table.pieces) else b""
        if not piece:
            break
        removed = piece + removed
        if len(removed) > max_bytes:
            break
        if table.extends(removed, strict=k == 1):
            best = Heal(len(tokens) - k, removed)
    return best


def advance(removed: bytes, piece: bytes) -> bytes | None:
    """What of ``removed`` is still to be regenerated after ``piece``; None if ``piece`` does
    not fit (neither starts with the rest nor is a prefix of it)."""
    if piece.startswith(removed):
        return b""
    if piece and removed.startswith(piece):
        return removed[len(piece):]
    return None
