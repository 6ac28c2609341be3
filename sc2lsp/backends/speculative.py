"""Prompt-lookup drafting for speculative greedy decoding (no llama_cpp here: token ids only).

In fill-in-the-middle the text the model is about to write often already stands in the prompt:
in the suffix (editing in the middle of code that continues below), in the repository context (a
definition being called) or in the prefix (repetitive code). ``PromptLookup`` finds the latest
longest earlier occurrence of the last tokens (prompt + generated so far, then the sequences of
recent requests in ``History``: a deleted block is no longer in the prompt) and proposes the
tokens that followed it; the backend verifies the draft in one batched model pass and keeps the
longest prefix that greedy decoding would have produced anyway, so the output never changes.

``DraftPolicy`` decides how many tokens to draft so that drafting pays: a row of a pass costs a
fraction ``c`` of a one-token pass (small on a bandwidth-bound 3B, ~0.2 on sc2-tiny without
flash attention), the rows a pass has anyway are free, and the i-th drafted token only helps if
the i first ones are all accepted, which happens with probability ``q ** i`` where ``q`` is the
measured acceptance rate for matches of that length. The draft stops where ``q ** i`` no longer
beats ``c`` times the tokens a unit of pass cost gives now. The figures are measured while
running (exponential moving averages), starting from cautious priors.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..core.healing import advance

#: matches this long or longer share one statistics bucket (tokens)
MAX_MATCH = 4
#: longest match looked for: a longer match picks, among earlier occurrences, the one that goes on
#: like the text now (the statistics bucket stays MAX_MATCH)
LONGEST_MATCH = 12
#: priors for the acceptance rate of a drafted token, by match length 1, 2, 3, 4+
_PRIOR_Q = (0.2, 0.4, 0.55, 0.7)
#: weight of the priors and decay of the statistics (in drafted tokens)
_PRIOR_N = 8.0
_DECAY = 0.97
_TOKEN = struct.Struct("<i")


def _encode(tokens) -> bytearray:
    """Token ids as 4-byte little-endian integers: a run of tokens is a byte string, and the latest
    earlier occurrence of the last tokens is found by one C-level ``rfind`` per length tried."""
    return bytearray(np.asarray(tokens, dtype="<i4").tobytes())


def _match(raw, end: int, tail: bytes, min_match: int) -> tuple[int, int]:
    """(position after the best match of ``tail``'s end among the first ``end`` tokens of ``raw``
    (both encoded by ``_encode``), match length): the longest match (up to LONGEST_MATCH tokens),
    the latest of those; (-1, 0) below ``min_match``. The latest occurrence of the last m tokens
    is extended backwards to its whole match length L; a longer match can only end earlier, so the
    next search is for L + 1 tokens before it (a few microseconds a lookup; the numpy candidate
    filtering this replaces took ~150 us, 5-8% of a sc2-tiny pass)."""
    k = len(tail)
    t = min(k >> 2, LONGEST_MATCH)
    best, length, hi = -1, 0, end * 4
    m = max(1, min_match)
    while m <= t:
        sub = tail[k - 4 * m:]
        pos = raw.rfind(sub, 0, hi)
        while pos > 0 and pos & 3:  # across two tokens' bytes: look further back
            pos = raw.rfind(sub, 0, pos + len(sub) - 1)
        if pos < 0:
            break
        stop = pos + 4 * m  # the occurrence's end (bytes)
        while m < t and stop >= 4 * (m + 1) and raw[stop - 4 * (m + 1): stop - 4 * m] == tail[k - 4 * (m + 1): k - 4 * m]:
            m += 1
        best, length, hi = stop >> 2, m, stop - 4
        m += 1
    return (best, length) if length else (-1, 0)


class History:
    """Token sequences of recent requests (prompt and generated tokens), a draft source beside the
    current prompt: text the user deleted or a suggestion asked for again is no longer in the
    prompt but stood in an earlier one. A sequence that only extends the latest one (typing along)
    replaces it, so the sequences kept differ by more than a keystroke."""

    def __init__(self, entries: int = 3, max_tokens: int = 16384):
        self.entries, self.max_tokens = entries, max_tokens
        self.clear()

    def add(self, tokens: Sequence[int]) -> None:
        seq = np.asarray(tokens, dtype=np.int64)[-self.max_tokens // self.entries:]
        if self.seqs:
            last = self.seqs[-1]
            m = min(len(last), len(seq))
            diff = np.flatnonzero(last[:m] != seq[:m])
            common = int(diff[0]) if len(diff) else m
            if len(last) - common < 32:  # the latest holds little that this one lacks
                self.seqs.pop()
        self.seqs = (self.seqs + [seq])[-self.entries:]
        sep = np.full(1, -1, dtype=np.int64)  # never matches a token: no draft runs from one into the next
        self.hay = np.concatenate([p for s in self.seqs for p in (s, sep)])
        self.raw = self.hay.astype("<i4").tobytes()

    def clear(self) -> None:
        self.seqs: list[np.ndarray] = []
        self.hay = np.empty(0, dtype=np.int64)
        self.raw = b""


class PromptLookup:
    """The token history (prompt, then generated tokens) and n-gram lookups in it (and in the
    sequences of earlier requests, ``history``). ``capacity`` (tokens to be pushed) is not needed
    any more: the encoded history grows as tokens are pushed."""

    def __init__(self, prompt: list[int], capacity: int = 0, history: History | None = None):
        self.toks = list(prompt)
        self.raw = _encode(prompt)
        self.history = history

    @property
    def n(self) -> int:
        return len(self.toks)

    def push(self, tok: int) -> None:
        self.toks.append(tok)
        self.raw += _TOKEN.pack(tok)

    def lookup(self, max_len: int, min_match: int = 1) -> tuple[list[int], int]:
        """(up to ``max_len`` tokens that followed the best earlier match of the history's end,
        match length); the best match is the longest (up to ``LONGEST_MATCH``), the latest of
        those, in this request's tokens first and else in earlier requests' (a longer match
        there wins); nothing when the longest match is shorter than ``min_match``."""
        toks, n = self.toks, len(self.toks)
        if n < 1 or max_len <= 0:
            return [], 0
        tail = bytes(self.raw[-4 * LONGEST_MATCH:])
        start, length = _match(self.raw, n - 1, tail, min_match)
        hist = self.history
        if hist is not None and len(hist.hay) and length < LONGEST_MATCH:
            hstart, hlength = _match(hist.raw, len(hist.hay) - 1, tail, max(min_match, length + 1))
            if hlength > length:
                out = hist.hay[hstart: hstart + max_len].tolist()
                return (out[: out.index(-1)] if -1 in out else out), hlength  # up to a sequence's end
        if length == 0:
            return [], 0
        return toks[start: min(n, start + max_len)], length


@dataclass
class DraftPolicy:
    """How many tokens to draft: measured acceptance by match length against measured pass cost."""

    max_draft: int = 8
    #: cost of one more row in a pass, as a fraction of a pass over one token (measured; this is the prior)
    extra_cost: float = 0.3
    one_ms: float = 0.0  #: EMA of the time of a pass over one token (``base_rows`` rows)
    adaptive: bool = True  #: learn acceptance and cost while running (False: keep the figures given)
    #: rows of a pass over one token: 2 where every pass is computed as a batch (the second row is
    #: then a drafted token for free, or a row thrown away)
    base_rows: int = 1
    accepted: list[float] = field(default_factory=lambda: [q * _PRIOR_N for q in _PRIOR_Q])
    tested: list[float] = field(default_factory=lambda: [_PRIOR_N] * len(_PRIOR_Q))
    #: EMA of tokens per unit of pass cost (a one-token pass = 1): a drafted token must beat it
    gain: float = 1.0

    def rate(self, match: int) -> float:
        b = min(match, len(_PRIOR_Q)) - 1
        return self.accepted[b] / self.tested[b]

    def min_match(self, room: int) -> int:
        """The shortest match worth drafting after (MAX_MATCH + 1: none is)."""
        for m in range(1, MAX_MATCH + 1):
            if self.length(m, room):
                return m
        return MAX_MATCH + 1

    def length(self, match: int, room: int) -> int:
        """Tokens worth drafting after a match of ``match`` tokens (at most ``room``): the rows a
        pass has anyway (``base_rows - 1``) are free, each further i-th one pays while the chance
        that all i drafted tokens are accepted (rate ** i) beats its cost in tokens (the cost of
        a row times the tokens a unit of pass cost gives now)."""
        if match <= 0 or room <= 0:
            return 0
        free = self.base_rows - 1
        q = self.rate(match)
        c = max(self.extra_cost * self.gain, 1e-3)
        if q <= c:
            n = 0
        else:
            n = int(math.log(c) / math.log(q)) if q < 1 else self.max_draft
        return max(0, min(max(n, free), self.max_draft, room))

    def record(self, match: int, drafted: int, accepted: int) -> None:
        """A draft of ``drafted`` tokens after a ``match``-token match had ``accepted`` accepted."""
        if drafted <= 0 or not self.adaptive:
            return
        b = min(match, len(_PRIOR_Q)) - 1
        tested = accepted + (1 if accepted < drafted else 0)  # the tokens up to the first rejection
        self.accepted[b] = self.accepted[b] * _DECAY ** tested + accepted
        self.tested[b] = self.tested[b] * _DECAY ** tested + tested

    def passed(self, rows: int, tokens: int) -> None:
        """A pass over ``rows`` rows gave ``tokens`` tokens."""
        if self.adaptive:
            cost = 1.0 + self.extra_cost * max(0, rows - self.base_rows)
            self.gain = 0.95 * self.gain + 0.05 * tokens / cost

    def timed(self, size: int, ms: float) -> None:
        """A model pass over ``size`` rows took ``ms``: update the cost estimates."""
        if not self.adaptive:
            return
        base = self.base_rows
        if size <= base:
            self.one_ms = ms if self.one_ms <= 0 else 0.9 * self.one_ms + 0.1 * ms
        elif self.one_ms > 0:
            extra = max(0.0, (ms - self.one_ms) / (size - base) / self.one_ms)
            self.extra_cost = 0.9 * self.extra_cost + 0.1 * min(extra, 2.0)


class Run:
    """What a generation has produced so far, and the per-token checks that end it (the same for a
    token the model chose alone and for a drafted token it agreed with). ``backend``: the llama.cpp
    backend (its ``llm``, ``pieces`` and end-of-generation test)."""

    def __init__(self, backend, removed: bytes, max_tokens: int,
                 stop: Sequence[str], on_text: Callable[[str], bool | None] | None):
        self.backend, self.removed, self.max_tokens = backend, removed, max_tokens
        self.stop, self.on_text = stop, on_text
        self.out: list[int] = []
        self.text = ""
        self.pending = removed  # healed text not regenerated yet
        self.raw = b""  # the bytes of ``out``
        self.heal_steps = 0  # tokens that only regenerated healed text (not counted in max_tokens)

    def add(self, tok: int) -> None:
        self.out.append(tok)
        self.raw += self.backend.llm.detokenize([tok])  # byte-level pieces: the bytes of detokenizing all

    def _decoded(self) -> str:
        """The generated text after the healed bytes (which it starts with, by construction)."""
        raw, removed = self.raw, self.removed
        if removed and raw.startswith(removed):
            raw = raw[len(removed):]
        return raw.decode("utf-8", errors="replace")

    def room(self) -> int:
        return self.max_tokens - (len(self.out) - self.heal_steps)

    def heal(self, tok: int) -> bool:
        """Account for a constrained token; True while it leaves healed text to regenerate."""
        self.pending = advance(self.pending, self.backend.pieces.pieces[tok]) or b""
        self.heal_steps += bool(self.pending)
        return bool(self.pending)

    def emit(self, tok: int) -> str | None:
        """Add a generated token; the stop reason if it ends the generation."""
        b = self.backend
        if b.is_eog(tok):
            return "stop"
        self.add(tok)
        text = self._decoded()
        hits = [text.index(s) for s in self.stop if s in text]
        if hits:
            self.text = text[: min(hits)]
            return "stop"
        self.text = text
        if self.on_text is not None and self.on_text(text):
            return "done"
        return None
