"""Token budget of an infill prompt: how much prefix, suffix and repository context to send.

``plan_budget(prefix, suffix, total, count)`` keeps the end of the prefix (cut from the front at
a line boundary), the start of the suffix (cut from the back at a line boundary) and says how
many tokens are left for repository context. The prefix may take up to ``prefix_share`` of
``total``, the suffix up to ``suffix_share``; the context gets what the two reserve does not.
``count`` is any ``text -> int`` (a real tokenizer, or ``approx_tokens``, chars / 4).

Cache friendliness (SPM order: context, suffix, then prefix last). While the user types at the
cursor, the prompt must only grow at its end, so none of the cut points may move on a keystroke:

* The suffix does not change while typing before it, so its cut (the largest multiple of
  ``grid_lines`` lines that fits) does not move either.
* The prefix starts on a grid line: the smallest multiple of ``grid_lines`` (counted from the top
  of the file, so pressing Enter does not shift the grid) whose text up to the cursor fits. It
  moves forward by whole grid steps, once per ~``grid_lines`` typed lines, and only then is the
  prefix evaluated again. Hysteresis: given the ``previous`` plan, its start is kept while the
  kept prefix fits and fills at least ``min_fill`` of its budget, so typing and deleting around
  the boundary does not make the start jump back and forth.
* The context budget is ``total`` minus what prefix and suffix *reserve*, not what they use:
  the whole share once a text is cut, else its size rounded up to ``reserve_step`` tokens (with
  ``reserve_step / 2`` headroom). A typing user therefore changes it once per ``reserve_step``
  tokens of a short file, and never in a long one, even when the prefix start jumps.

Token counts are summed per grid chunk (lines ``[k * grid_lines, (k + 1) * grid_lines)``): pass a
memoised counter (``memo_counter``) and a keystroke only counts the cursor's chunk again. For
chars / 4 and any tokenizer that cannot merge across a line start, the sum is an upper bound of
the count of the joined text, so the budget holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

TokenCounter = Callable[[str], int]


#: Tokens kept free in the context besides the generated ones (special tokens, path lines).
PROMPT_OVERHEAD = 96
#: A text longer than ``budget * MAX_CHARS_PER_TOKEN`` characters is taken as over ``budget``
#: without being tokenized (code averages 3-4 characters per token). A cut inside one huge line
#: is searched only in its last ``budget * MAX_CHARS_PER_TOKEN`` characters: a 900,000-character
#: line under the cursor took 7 s of tokenizing per keystroke before, on the server's event loop.
MAX_CHARS_PER_TOKEN = 16


def prompt_budget(n_ctx: int, max_tokens: int, context_budget: int) -> tuple[int, int]:
    """(max new tokens, tokens of text the prompt may hold) in a context of ``n_ctx`` tokens: at
    most a quarter of the context is generated, and the text gets the rest minus
    ``PROMPT_OVERHEAD``, capped by the ``context_budget`` setting (at least 64)."""
    new = max(1, min(max_tokens, n_ctx // 4))
    return new, max(64, min(context_budget, n_ctx - new - PROMPT_OVERHEAD))


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per four characters, rounded up."""
    return (len(text) + 3) // 4


def memo_counter(count: TokenCounter, maxsize: int = 4096) -> TokenCounter:
    """``count`` remembering the texts it has seen (chunks recur on every keystroke)."""
    return lru_cache(maxsize=maxsize)(count)


@dataclass(frozen=True)
class BudgetOptions:
    prefix_share: float = 0.6
    """The most of ``total`` the prefix may take."""
    suffix_share: float = 0.2
    """The most of ``total`` the suffix may take."""
    grid_lines: int = 16
    """Cut points sit on multiples of this many lines, so they move rarely."""
    reserve_step: int = 128
    """The tokens reserved for a short prefix or suffix grow in steps of this size."""
    min_fill: float = 0.5
    """A previous prefix start is kept while the prefix fills at least this share of its budget."""

    def __post_init__(self) -> None:
        if not (0 <= self.prefix_share and 0 <= self.suffix_share and self.prefix_share + self.suffix_share <= 1):
            raise ValueError("prefix_share and suffix_share must be >= 0 and sum to at most 1")
        if self.grid_lines < 1 or self.reserve_step < 1 or not 0 <= self.min_fill <= 1:
            raise ValueError("grid_lines and reserve_step must be >= 1, min_fill in [0, 1]")


@dataclass(frozen=True)
class BudgetPlan:
    prefix_start: int
    """Offset in ``prefix`` where the kept prefix starts (a line start, but for a huge line)."""
    suffix_end: int
    """Offset in ``suffix`` where the kept suffix ends (after a newline, or the end)."""
    prefix_line: int
    """Index of the line ``prefix_start`` lies on (0 = first line of the file)."""
    prefix_tokens: int
    suffix_tokens: int
    prefix_reserve: int
    suffix_reserve: int
    context_tokens: int
    """Tokens left for repository context: ``total - prefix_reserve - suffix_reserve``."""

    def cut(self, prefix: str, suffix: str) -> tuple[str, str]:
        return prefix[self.prefix_start:], suffix[: self.suffix_end]


def plan_budget(
    prefix: str,
    suffix: str,
    total: int,
    count: TokenCounter = approx_tokens,
    options: BudgetOptions = BudgetOptions(),
    previous: BudgetPlan | None = None,
) -> BudgetPlan:
    """Where to cut ``prefix`` and ``suffix`` for a prompt of ``total`` tokens of text.

    ``total`` excludes special tokens, the path line and the generated tokens. ``previous`` is
    the plan of the last request in the same document (for hysteresis; optional).
    """
    p_max = int(total * options.prefix_share)
    s_max = int(total * options.suffix_share)
    g = options.grid_lines
    count_p, count_s = _bounded(count, p_max), _bounded(count, s_max)

    starts = _line_starts(prefix)
    cursor_line = len(starts) - 1
    chunks: dict[int, int] = {}

    def chunk(k: int) -> int:
        """Tokens of grid chunk ``k`` (the cursor's chunk ends at the cursor)."""
        if k not in chunks:
            a, b = k * g, (k + 1) * g
            chunks[k] = count_p(prefix[starts[a]: starts[b]] if b <= cursor_line else prefix[starts[a]:])
        return chunks[k]

    def from_line(line: int, limit: int) -> int:
        """Tokens of ``prefix[starts[line]:]`` summed per chunk; stops early past ``limit``."""
        k, end = line // g, (line // g + 1) * g
        if line % g == 0:
            t = 0
        elif end > cursor_line:
            return count_p(prefix[starts[line]:])
        else:
            t, k = count_p(prefix[starts[line]: starts[end]]), k + 1
        for j in range(k, cursor_line // g + 1):
            if t > limit:
                break
            t += chunk(j)
        return t

    line = offset = None
    p_tokens = 0
    if previous is not None and previous.prefix_line <= cursor_line and starts[previous.prefix_line] == previous.prefix_start:
        t = from_line(previous.prefix_line, p_max)
        if t <= p_max and (previous.prefix_line == 0 or t >= options.min_fill * p_max):
            line, offset, p_tokens = previous.prefix_line, previous.prefix_start, t
    if line is None:
        line, offset, p_tokens = _prefix_cut(prefix, starts, g, p_max, chunk, count_p)

    s_end, s_tokens = _suffix_cut(suffix, g, s_max, count_s)

    p_reserve = _reserve(p_tokens, p_max, offset > 0, options.reserve_step,
                         previous.prefix_reserve if previous else None)
    s_reserve = _reserve(s_tokens, s_max, s_end < len(suffix), options.reserve_step,
                         previous.suffix_reserve if previous else None)
    return BudgetPlan(offset, s_end, line, p_tokens, s_tokens, p_reserve, s_reserve, total - p_reserve - s_reserve)


def _bounded(count: TokenCounter, budget: int) -> TokenCounter:
    """``count``, but a text too long to fit ``budget`` at ``MAX_CHARS_PER_TOKEN`` is not
    tokenized: its count is taken as ``budget + 1``."""
    limit = budget * MAX_CHARS_PER_TOKEN
    return lambda text: budget + 1 if len(text) > limit else count(text)


def _line_starts(text: str) -> list[int]:
    starts = [0]
    i = text.find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = text.find("\n", i + 1)
    return starts


def _prefix_cut(prefix, starts, g, budget, chunk, count) -> tuple[int, int, int]:
    """(line, offset, tokens): the smallest grid line that fits (whole chunks, counted from the
    cursor backwards until the budget is spent), else the smallest line, else the shortest cut
    into the cursor's line."""
    cursor_line = len(starts) - 1
    best = None
    acc = 0
    for k in range(cursor_line // g, -1, -1):
        acc += chunk(k)
        if acc > budget:
            break
        best = (k * g, starts[k * g], acc)
    if best is not None:
        return best
    for line in range(cursor_line // g * g + 1, cursor_line + 1):
        t = count(prefix[starts[line]:])
        if t <= budget:
            return line, starts[line], t
    # The cursor's line alone is too long: the smallest offset into it that fits, searched in
    # the part of it that can fit (``MAX_CHARS_PER_TOKEN``)
    lo, hi = max(starts[cursor_line], len(prefix) - budget * MAX_CHARS_PER_TOKEN), len(prefix)
    while lo < hi:
        mid = (lo + hi) // 2
        if count(prefix[mid:]) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return cursor_line, lo, count(prefix[lo:])


def _suffix_cut(suffix: str, g: int, budget: int, count: TokenCounter) -> tuple[int, int]:
    """(end, tokens): whole grid chunks from the start, then whole lines, then characters."""
    if not suffix:
        return 0, 0
    ends = _line_starts(suffix)[1:]
    if not ends or ends[-1] != len(suffix):
        ends.append(len(suffix))
    end = tokens = 0
    for k in range(g - 1, len(ends) + g - 1, g):  # grid chunks
        e = ends[min(k, len(ends) - 1)]
        t = count(suffix[end:e])
        if tokens + t > budget:
            break
        end, tokens = e, tokens + t
    if end == 0:  # not even one chunk: whole lines
        for e in ends:
            t = count(suffix[end:e])
            if tokens + t > budget:
                break
            end, tokens = e, tokens + t
    if end == 0:  # not even one line: characters (of the part of it that can fit)
        lo, hi = 0, min(ends[0], budget * MAX_CHARS_PER_TOKEN)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(suffix[:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        end, tokens = lo, count(suffix[:lo])
    return end, tokens


def _reserve(tokens: int, cap: int, was_cut: bool, step: int, previous: int | None) -> int:
    if was_cut:
        return cap
    if previous is not None and tokens <= previous <= cap and previous - tokens <= 2 * step:
        return previous
    return min(cap, math.ceil((tokens + step // 2) / step) * step)
