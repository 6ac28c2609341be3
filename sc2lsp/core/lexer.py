"""Just enough lexical syntax of a language to find brackets outside strings and comments, and the
indentation of a line: what ``core.postprocess`` needs to see where a suggestion's block ends.
Pure string functions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

OPENERS = "([{"


@dataclass(frozen=True)
class Syntax:
    """Just enough lexical syntax to find brackets outside strings and comments."""

    line_comments: tuple[str, ...]
    block_comment: tuple[str, str] | None
    quotes: tuple[str, ...]
    colon_blocks: bool  # a line ending in ':' opens an indented block (Python)
    pattern: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = [re.escape(c) + r"[^\n]*" for c in self.line_comments]
        if self.block_comment:
            a, b = map(re.escape, self.block_comment)
            parts.append(a + r"[\s\S]*?(?:" + b + r"|\Z)")
        for q in sorted(self.quotes, key=len, reverse=True):
            e = re.escape(q)
            if len(q) == 3:
                parts.append(e + r"[\s\S]*?(?:" + e + r"|\Z)")
            elif q == "`":
                parts.append(r"`(?:\\[\s\S]|[^`\\])*`?")
            else:
                parts.append(e + r"(?:\\.|[^" + e + r"\\\n])*" + e + "?")
        parts.append(r"(?P<b>[()\[\]{}])")
        object.__setattr__(self, "pattern", re.compile("|".join(parts)))


PYTHON = Syntax(("#",), None, ('"""', "'''", '"', "'"), True)
C_LIKE = Syntax(("//",), ("/*", "*/"), ('"', "'", "`"), False)
_SYNTAX: dict[str, Syntax] = {
    "python": PYTHON,
    "rust": Syntax(("//",), ("/*", "*/"), ('"',), False),  # 'a is a lifetime
    "ruby": Syntax(("#",), None, ('"', "'"), False),
    "shellscript": Syntax(("#",), None, ('"', "'"), False),
}
_ALIASES = {"py": "python", "rs": "rust", "sh": "shellscript", "bash": "shellscript"}


def syntax_for(language: str) -> Syntax:
    name = language.lower()
    return _SYNTAX.get(_ALIASES.get(name, name), C_LIKE)


def indent_width(line: str, tab: int) -> int:
    width = 0
    for c in line:
        if c == " ":
            width += 1
        elif c == "\t":
            width += tab - width % tab
        else:
            break
    return width


def brackets(text: str, syn: Syntax) -> list[tuple[int, str]]:
    """(offset, char) of every bracket outside strings and comments."""
    return [(m.start(), m.group("b")) for m in syn.pattern.finditer(text) if m.group("b")]


def suggestion_brackets(line_before: str, text: str, syn: Syntax) -> list[tuple[int, str]]:
    """Brackets of ``text`` lexed after ``line_before`` (which may open a string), offsets in ``text``."""
    n = len(line_before)
    return [(pos - n, b) for pos, b in brackets(line_before + text, syn) if pos >= n]


def code_of(line: str, syn: Syntax) -> str:
    """``line`` without comments, strings replaced by a placeholder, stripped."""
    return syn.pattern.sub(lambda m: m.group(0) if m.group("b") else ("" if is_comment(m.group(0), syn) else '""'), line).strip()


def is_comment(tok: str, syn: Syntax) -> bool:
    return tok.startswith(syn.line_comments) or bool(syn.block_comment and tok.startswith(syn.block_comment[0]))


def line_depths(text: str, syn: Syntax) -> list[int]:
    """Bracket depth at the start of each line of ``text``, then at its end."""
    events = brackets(text, syn)
    starts = [0]
    i = text.find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = text.find("\n", i + 1)
    depths, depth, k = [], 0, 0
    for s in starts:
        while k < len(events) and events[k][0] < s:
            depth += 1 if events[k][1] in OPENERS else -1
            k += 1
        depths.append(depth)
    while k < len(events):
        depth += 1 if events[k][1] in OPENERS else -1
        k += 1
    depths.append(depth)  # at the very end
    return depths
