"""Saved KV states of the llama.cpp backend: an LRU in RAM keyed by token sequence.

Token ids only, no llama_cpp: the backend serialises the states (``llama_state_seq_*``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    # compare in blocks first: prompts share long prefixes
    step = 256
    while i + step <= n and a[i:i + step] == b[i:i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


class StateCache:
    """Saved llama states keyed by their token sequence; least recently used dropped first."""

    def __init__(self, capacity_bytes: int):
        self.capacity = capacity_bytes
        self._items: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._sizes: dict[tuple[int, ...], int] = {}
        self.saves = self.loads = 0

    @property
    def nbytes(self) -> int:
        return sum(self._sizes.values())

    def __len__(self) -> int:
        return len(self._items)

    def best(self, tokens: Sequence[int]) -> tuple[tuple[int, ...] | None, int]:
        """The saved key sharing the longest prefix with ``tokens``, and that length."""
        best_key, best_n = None, 0
        for key in self._items:
            n = _common_prefix(key, tokens)
            if n > best_n:
                best_key, best_n = key, n
        return best_key, best_n

    def covers(self, tokens: Sequence[int]) -> bool:
        """Whether some saved state already holds all of ``tokens`` (no need to save again)."""
        return any(len(k) >= len(tokens) and _common_prefix(k, tokens) == len(tokens) for k in self._items)

    def put(self, key: tuple[int, ...], state: object, size: int) -> None:
        if size > self.capacity:
            return
        # a saved state that is a prefix of the new one is redundant
        for k in [k for k in self._items if len(k) <= len(key) and key[: len(k)] == k]:
            self._drop(k)
        self._items[key] = state
        self._sizes[key] = size
        while self.nbytes > self.capacity:
            self._drop(next(iter(self._items)))
        self.saves += 1

    def get(self, key: tuple[int, ...]) -> object:
        self._items.move_to_end(key)
        self.loads += 1
        return self._items[key]

    def _drop(self, key) -> None:
        del self._items[key]
        del self._sizes[key]
