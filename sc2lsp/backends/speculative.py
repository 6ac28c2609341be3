"""Prompt-lookup drafting for speculative greedy decoding (no llama_cpp here: token ids only).

In fill-in-the-middle the text the model is about to write often already stands in the prompt:
in the suffix (editing in the middle of code that continues below), in the repository context (a
definition being called) or in the prefix (repetitive code). ``PromptLookup`` finds the latest
longest earlier occurrence of the last tokens (prompt + generated so far) and proposes the tokens
that followed it; the backend verifies the draft in one batched model pass and keeps the longest
prefix that greedy decoding would have produced anyway, so the output never changes.

``DraftPolicy`` decides how many tokens to draft so that drafting pays: a drafted token costs a
fraction ``c`` of a one-token pass (small on a bandwidth-bound 3B, ~0.5 on the compute-bound
sc2-tiny), and the i-th drafted token only helps if the i first ones are all accepted, which
happens with probability ``q ** i`` where ``q`` is the measured acceptance rate for matches of
that length. The draft stops where ``q ** i <= c``. Both figures are measured while running
(exponential moving averages), starting from cautious priors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: longest match looked for (tokens); matches this long or longer share one statistics bucket
MAX_MATCH = 4
#: priors for the acceptance rate of a drafted token, by match length 1, 2, 3, 4+
_PRIOR_Q = (0.2, 0.4, 0.55, 0.7)
#: weight of the priors and decay of the statistics (in drafted tokens)
_PRIOR_N = 8.0
_DECAY = 0.97


class PromptLookup:
    """The token history (prompt, then generated tokens) and n-gram lookups in it."""

    def __init__(self, prompt: list[int], capacity: int):
        self.buf = np.empty(len(prompt) + capacity + 1, dtype=np.int32)
        self.buf[: len(prompt)] = prompt
        self.n = len(prompt)

    def push(self, tok: int) -> None:
        if self.n < len(self.buf):
            self.buf[self.n] = tok
            self.n += 1

    def lookup(self, max_len: int) -> tuple[list[int], int]:
        """(up to ``max_len`` tokens that followed the best earlier match of the history's end,
        match length); the best match is the longest (up to ``MAX_MATCH``), the latest of those."""
        h, n = self.buf, self.n
        if n < 2 or max_len <= 0:
            return [], 0
        cand = np.flatnonzero(h[: n - 1] == h[n - 1])  # ends of earlier occurrences of the last token
        if not len(cand):
            return [], 0
        length = 1
        while length < MAX_MATCH and length < n:
            prev = cand - length
            ok = prev >= 0
            ok[ok] = h[prev[ok]] == h[n - 1 - length]
            if not ok.any():
                break
            cand = cand[ok]
            length += 1
        start = int(cand[-1]) + 1
        return h[start: min(n, start + max_len)].tolist(), length


@dataclass
class DraftPolicy:
    """How many tokens to draft: measured acceptance by match length against measured pass cost."""

    max_draft: int = 8
    #: cost of one more token in a pass, as a fraction of a one-token pass (measured; this is the prior)
    extra_cost: float = 0.3
    one_ms: float = 0.0  #: EMA of the time of a one-token pass
    adaptive: bool = True  #: learn acceptance and cost while running (False: keep the figures given)
    accepted: list[float] = field(default_factory=lambda: [q * _PRIOR_N for q in _PRIOR_Q])
    tested: list[float] = field(default_factory=lambda: [_PRIOR_N] * len(_PRIOR_Q))

    def rate(self, match: int) -> float:
        b = min(match, len(_PRIOR_Q)) - 1
        return self.accepted[b] / self.tested[b]

    def length(self, match: int, room: int) -> int:
        """Tokens worth drafting after a match of ``match`` tokens (at most ``room``)."""
        if match <= 0 or room <= 0:
            return 0
        q = self.rate(match)
        c = max(self.extra_cost, 1e-3)
        if q <= c:
            return 0
        n = int(math.log(c) / math.log(q)) if q < 1 else self.max_draft
        return max(0, min(n, self.max_draft, room))

    def record(self, match: int, drafted: int, accepted: int) -> None:
        """A draft of ``drafted`` tokens after a ``match``-token match had ``accepted`` accepted."""
        if drafted <= 0 or not self.adaptive:
            return
        b = min(match, len(_PRIOR_Q)) - 1
        tested = accepted + (1 if accepted < drafted else 0)  # the tokens up to the first rejection
        self.accepted[b] = self.accepted[b] * _DECAY ** tested + accepted
        self.tested[b] = self.tested[b] * _DECAY ** tested + tested

    def timed(self, size: int, ms: float) -> None:
        """A model pass over ``size`` tokens took ``ms``: update the cost estimates."""
        if not self.adaptive:
            return
        if size == 1:
            self.one_ms = ms if self.one_ms <= 0 else 0.9 * self.one_ms + 0.1 * ms
        elif self.one_ms > 0:
            extra = max(0.0, (ms - self.one_ms) / (size - 1) / self.one_ms)
            self.extra_cost = 0.9 * self.extra_cost + 0.1 * min(extra, 2.0)
