"""The line steps of post-processing (``core.postprocess``): where a multi-line suggestion stops.

Each returns the number of suggestion lines to keep (None: no cut). ``scope_end`` decides at the
first line that leaves the block, ``repeat_end`` at a block of 1-4 lines written again,
``next_lines_end`` at the line that re-writes the next line of the file. Every decision depends on
the lines up to it and a bounded number after it, which is what ``postprocess.settled`` relies on.
"""

from __future__ import annotations

import re

from .lexer import OPENERS as _OPENERS
from .lexer import Syntax as _Syntax
from .lexer import code_of as _code
from .lexer import indent_width as _indent
from .lexer import line_depths as _line_depths

CLOSERS = ")]}"
_CLAUSE_WORDS = ("else", "elif", "except", "finally", "catch")
_LETTER = re.compile(r"[A-Za-z_]")
_ALNUM = re.compile(r"[A-Za-z0-9_]")


def keep_lines(text: str, n: int | None) -> str:
    if n is None:
        return text
    return "\n".join(text.split("\n")[:n]) if n > 0 else ""


def scope_end(text: str, line_before: str, syn: _Syntax, tab: int) -> int | None:
    """Number of suggestion lines inside the block the suggestion started in."""
    found = scope_decision(text, line_before, syn, tab)
    return None if found is None else found[0]


def scope_decision(text: str, line_before: str, syn: _Syntax, tab: int) -> tuple[int, int, bool] | None:
    """``scope_end``'s cut, the line that decided it, and whether the decision read that whole line
    (True: its code, ``} else {``; False: only its indentation, fixed by its first non-blank
    character, so an unfinished line decides it too)."""
    lines = text.split("\n")
    full = line_before + text
    depths = _line_depths(full, syn)  # depths[j]: at the start of line j; depths[-1]: at the end
    first = line_before + lines[0]
    start = 0
    if not first.strip():
        start = next((j for j in range(1, len(lines)) if lines[j].strip()), None)
        if start is None:
            return None
        first = lines[start]
    base = _indent(first, tab)
    code = _code(first, syn)
    by_bracket = depths[start + 1] > depths[start]
    # On a blank line the user writes statements of the enclosing block; on a line they started,
    # an opener means they want its body.
    opener = bool(line_before.strip()) and (by_bracket or (syn.colon_blocks and code.endswith(":")))
    for j in range(start + 1, len(lines)):
        line = lines[j]
        if not line.strip():
            continue
        ind = _indent(line, tab)
        if opener:
            if ind > base:
                continue
            code = _code(line, syn)
            if _continues_statement(code, syn):
                continue
            if by_bracket and code[:1] in CLOSERS:
                return j + 1, j, True
            return j, j, True
        if depths[j] > depths[start]:
            continue  # a continuation line inside brackets the suggestion opened
        if ind < base:
            return j, j, False
    return None


def _continues_statement(code: str, syn: _Syntax) -> bool:
    """``} else {``, ``else:``, ``except E:``: a line that keeps the opener's statement going."""
    if code[:1] in CLOSERS and code[-1:] in _OPENERS:
        return True
    word = re.match(r"[A-Za-z]+", code)
    ends = code.endswith(":") if syn.colon_blocks else code.endswith("{")
    return bool(word and word.group(0) in _CLAUSE_WORDS and ends)


def _significant(block: list[str]) -> bool:
    return any(_LETTER.search(line) for line in block)


def repeat_end(text: str, line_before: str, line_after: str, above: list[str]) -> int | None:
    """Cut before a block of 1-4 lines that repeats the block just before it."""
    lines = text.split("\n")
    full = [line_before + lines[0] + line_after] + lines[1:]
    seq = [s.rstrip() for s in above + full]
    na = len(above)
    for second in range(na, len(seq)):  # where the copy would start
        for p in range(1, 5):
            first = second - p
            if first < 0 or second + p > len(seq):
                continue
            block = seq[first:second]
            if seq[second:second + p] == block and _significant(block):
                return second - na
    return None


def _iter_lines(text: str, start: int):
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def next_lines_end(text: str, line_before: str, suffix: str, eol: int) -> int | None:
    """Cut before the suggestion line that re-writes the next non-blank line after the cursor."""
    if eol < 0:
        return None
    nxt = next((s for s in _iter_lines(suffix, eol + 1) if s.strip()), None)
    if nxt is None or not _ALNUM.search(nxt):
        return None
    nxt = nxt.rstrip()
    lines = text.split("\n")
    full = [line_before + lines[0]] + lines[1:]
    for j, line in enumerate(full):
        if line.rstrip() == nxt and (j or lines[0].strip()):
            return j
    last = full[-1].rstrip()
    if len(full) > 1 and len(last.strip()) >= 4 and nxt.startswith(last):
        return len(full) - 1
    return None


#: A generation ended by a limit whose text ends in a loop: a unit of up to this many characters,
#: written at least ``LOOP_TIMES`` times and over at least ``LOOP_CHARS`` characters.
LOOP_UNIT = 40
LOOP_TIMES = 3
LOOP_CHARS = 16


def loop_start(text: str) -> tuple[int, int] | None:
    """Where the periodic run that ends ``text`` starts (``int(int(int(int(``, ``g.g.g.g.g.g.g.g.``),
    and its unit's length, or None. The earliest start over the unit lengths that qualify."""
    n, best = len(text), None
    for p in range(1, min(LOOP_UNIT, n // LOOP_TIMES) + 1):
        i = n - p - 1  # extend the run back while each character equals the one a unit later
        while i >= 0 and text[i] == text[i + p]:
            i -= 1
        run = n - (i + 1)
        if run >= max(LOOP_TIMES * p, LOOP_CHARS) and (best is None or i + 1 < best[0]):
            best = (i + 1, p)
    return best


def unfinished_cut(text: str) -> str:
    """What to show of a generation that ``max_tokens`` or the time cap ended (the text still
    reaches that end): with one copy of the loop it ends in, if any (what the model wrote before
    it repeated itself), and for a multi-line text without its last line, which is unfinished."""
    loop = loop_start(text)
    if loop is not None:
        text = text[: loop[0] + loop[1]]
    eol = text.rfind("\n")
    return text[:eol] if eol >= 0 else text
