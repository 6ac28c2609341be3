"""What of the model's raw output is shown as ghost text.

Pure string functions: no I/O, no parser. The caller may pass ``syntax_errors(text) -> int``
(``sc2lsp.context.syntax`` builds one from tree-sitter) to enable syntax-validated truncation.

``postprocess(raw, prefix, suffix)`` runs these steps in order; each one may only shorten the
suggestion (or empty it), never add text, so the result is always a prefix of the raw output
(modulo CRLF conversion):

``stop``          cut at the first special token (``<file_sep>``, ``<|endoftext|>``, FIM tokens).
``blank``         whitespace-only output shows nothing.
``single_line``   the cursor is mid-line (the rest of the line holds more than closing
                  brackets, quotes, ``;,:`` and whitespace): keep the first line only.
``scope``         stop where the suggestion leaves the block it started in. The block's indent
                  is that of the cursor's line. If the user started that line and it opens a
                  block (ends with ``:`` in Python, or leaves a bracket open), the suggestion
                  ends with that block: at the first line indented no deeper than the opener; a
                  line there that starts with a closing bracket (``}``) is kept as the block's
                  end, one that continues the statement (``} else {``, ``else:``,
                  ``except ...:``) does not end it. Otherwise (e.g. on a blank line) a line
                  indented less than the cursor's line ends it, unless it starts inside a
                  bracket the suggestion opened (a continuation line). Indentation works for
                  brace languages too, which are indented in practice; braces decide only where
                  a block ends.
``repeat``        a block of 1-4 lines followed by itself (counting up to four lines above the
                  cursor) is cut before the copy; if the cursor's own line is the copy, nothing is
                  shown. Lines without a letter (``}``, ``[0, 0],``) never count as repeats.
``next_lines``    cut before the line that equals the next non-blank line after the cursor's line
                  (same indentation, contains a letter or digit), or that is an unfinished copy of
                  it at the very end.
``max_lines``     at most ``options.max_lines`` lines.
``unfinished``    with ``truncated`` (``max_tokens`` or the time cap ended the generation) and no
                  step above cut the text: a loop it ends in (a unit of up to 40 characters
                  written 3+ times over 16+ characters: ``int(int(int(int(``) is cut to one copy,
                  then, if it has several lines, its last line, which the limit left unfinished.
``brackets``      a closing bracket the suggestion did not open is cut (with everything after
                  it) when the text after the cursor already supplies it: at the same indentation
                  for a closer that starts a line, else counting the brackets the cursor's line
                  left open.
``line_overlap``  drop a tail that repeats the start of the rest of the line: all of it, at
                  least ``options.min_overlap_chars`` of it, or only punctuation (but not only
                  closing brackets, which ``brackets`` weighs). A multi-line suggestion whose
                  first line ends with the whole rest of the line is cut to that line, minus it.
``trailing``      trailing blank lines (and, at the end of a line, trailing spaces) are dropped.
``syntax``        with ``syntax_errors``: the longest prefix of the suggestion (whole lines
                  first, then token boundaries within the next line) such that
                  ``prefix + cut + suffix`` has no more errors than ``prefix + suffix``.

The pure steps look only near the cursor (the cursor's line, four lines above, the next
non-blank line), so passing the whole document's prefix and suffix costs nothing. Do pass the
whole document when using the syntax hook: a prefix cut by the token budget may start inside a
docstring or a function and give the parser a different file. ``SyntaxChecker`` re-parses
incrementally, so whole documents stay cheap (about 2 parses, 1-3 ms, for a 300-line file).

``advance_suggestion(shown, typed)`` is the fast path for a user who types what the ghost text
says: the rest of the suggestion, or ``None`` when they diverged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .lexer import OPENERS as _OPENERS
from .lexer import Syntax as _Syntax
from .lexer import brackets as _brackets
from .lexer import indent_width as _indent
from .lexer import suggestion_brackets as _suggestion_brackets
from .lexer import syntax_for as _syntax_for
from .line_steps import keep_lines, next_lines_end, repeat_end, scope_decision, scope_end, unfinished_cut
from .tokens import SPECIAL_TOKENS

SyntaxErrors = Callable[[str], int]

_CLOSE_TO_OPEN = {")": "(", "]": "[", "}": "{"}
_CLOSERS = ")]}"
#: Characters that may follow the cursor without making it "mid-line" (auto-closed pairs; a CRLF
#: document's CR).
_TRAILING_OK = frozenset(")]}\"'`;,: \t\r")
_QUOTES = "\"'`"
_ALNUM = re.compile(r"[A-Za-z0-9_]")
_TOKEN_END = re.compile(r"\w+|[^\w\s]")
#: Special tokens that end a suggestion; the PII placeholders (<NAME>, <EMAIL>, ...) do not.
_STOP_AT = tuple(t for t in SPECIAL_TOKENS if not re.fullmatch(r"<[A-Z]+>", t))


@dataclass(frozen=True)
class PostprocessOptions:
    """How much of a suggestion to show. Every field has a default."""

    language: str = ""
    """LSP language id (``python``, ``javascript``, ...): picks comment and string syntax for
    bracket counting and whether ``:`` opens a block. Unknown ids use C-like rules."""
    max_lines: int = 16
    """At most this many lines in a multi-line suggestion."""
    multiline: bool = True
    """Allow multi-line suggestions at all (when the rest of the line is empty)."""
    tab_size: int = 4
    """Width of a tab when comparing indentation."""
    min_overlap_chars: int = 1
    """A partial overlap with the rest of the line is trimmed from this many characters (any
    length if it is only punctuation; the whole rest of the line always). The default trims any
    overlap: a FIM middle whose end repeats the start of the suffix is almost always a repeat
    (``if not x`` before ``x:``), rarely two tokens that merge."""
    max_syntax_checks: int = 40
    """At most this many ``syntax_errors`` calls per suggestion (then the best cut so far)."""

    def __post_init__(self) -> None:
        if self.max_lines < 1 or self.tab_size < 1 or self.min_overlap_chars < 1 or self.max_syntax_checks < 1:
            raise ValueError("max_lines, tab_size, min_overlap_chars and max_syntax_checks must be >= 1")


@dataclass(frozen=True)
class Postprocessed:
    text: str
    """The suggestion to show ("" for nothing)."""
    applied: tuple[str, ...]
    """Names of the steps that changed the text, in order (see the module docstring)."""


def postprocess(
    raw: str,
    prefix: str,
    suffix: str,
    options: PostprocessOptions = PostprocessOptions(),
    syntax_errors: SyntaxErrors | None = None,
    *,
    truncated: bool = False,
) -> str:
    """The suggestion to show for ``raw`` model output at the cursor between prefix and suffix
    (``truncated``: a limit ended the generation, ``max_tokens`` or the time cap)."""
    return postprocess_trace(raw, prefix, suffix, options, syntax_errors, truncated=truncated).text


def advance_suggestion(shown: str, typed: str) -> str | None:
    """The rest of ``shown`` after the user typed ``typed`` at the cursor, or ``None``.

    ``""`` means they typed all of it. The rest needs no model call; re-running
    ``postprocess(rest, new_prefix, new_suffix)`` without a syntax hook costs well under a
    millisecond and re-applies the overlap and bracket rules to the new cursor.
    """
    return shown[len(typed):] if shown.startswith(typed) else None


def mid_line(suffix: str) -> bool:
    """Whether the cursor is mid-line: more than closing brackets, quotes, ``;,:`` and whitespace
    follow it on its line. Then only the first line of a suggestion is shown (``single_line``), so
    a generation can stop at the first newline."""
    eol = suffix.find("\n")
    return any(c not in _TRAILING_OK for c in (suffix if eol < 0 else suffix[:eol]))


def settled(raw: str, prefix: str, suffix: str, options: PostprocessOptions = PostprocessOptions()) -> bool:
    """Whether ``postprocess(raw + more, prefix, suffix)`` is the same for every ``more``: the
    generation can stop, what it would add is cut anyway (with or without the syntax hook, which
    only sees what the line steps kept).

    Only the line steps of a multi-line suggestion settle it, judged on the complete lines of
    ``raw`` (those followed by a newline) and on the indentation of the line being written (its
    text can still change). Each step's cut depends on a bounded number of lines after it, and an
    earlier step could still cut sooner where a later line is missing, so:

    - ``scope`` ending the block at a complete line settles it (it runs first, and a later line
      cannot move its first ending line), and so does the line being written when its
      indentation alone ends the block (a dedent: fixed by its first non-blank character);
    - ``repeat`` cutting at line j, or ``next_lines`` at line j, settles it when lines up to j + 2
      are complete (no repeat of up to 4 lines could start before j in a continuation);
    - more than ``max_lines`` lines settle it when lines up to ``max_lines`` + 2 are complete.

    False when the cursor is mid-line or ``multiline`` is off (the generation stops at the first
    newline then), and for a raw text with a special token (the generation stops there anyway).
    """
    raw, prefix, suffix = _lf(raw, prefix, suffix)
    eol = raw.rfind("\n")
    if eol < 0 or not options.multiline or _cut_at_special(raw) != raw:
        return False
    at = _At.of(prefix, suffix)
    if at.mid_line:
        return False
    complete = raw[:eol]  # the complete lines (n of them), as a continuation would also begin
    if not complete.strip():
        return False
    n = complete.count("\n") + 1
    scope = scope_decision(raw, at.line_before, _syntax_for(options.language), options.tab_size)
    if scope is not None and (scope[1] < n or not scope[2]):  # a complete line, or an indentation
        return True
    cut = repeat_end(complete, at.line_before, "", at.above)
    if cut is None:
        cut = next_lines_end(complete, at.line_before, suffix, at.eol)
    if cut is not None:
        return cut + 3 <= n
    return n >= options.max_lines + 3


# --------------------------------------------------------------------------- the pipeline


def _lf(raw: str, prefix: str, suffix: str) -> tuple[str, str, str]:
    """The three texts with CRLF line ends as LF (the steps work on LF)."""
    if "\r" in raw or "\r\n" in prefix or "\r\n" in suffix:
        raw, prefix, suffix = (s.replace("\r\n", "\n") for s in (raw, prefix, suffix))
    return raw, prefix, suffix


@dataclass(frozen=True)
class _At:
    """What the steps look at around the cursor."""

    line_before: str  #: the cursor's line before it
    line_after: str  #: the cursor's line after it
    eol: int  #: where the cursor's line ends in the suffix (-1: the suffix has one line)
    above: list[str]  #: up to four lines above the cursor's line
    mid_line: bool  #: more than closers after the cursor: one line is shown

    @classmethod
    def of(cls, prefix: str, suffix: str) -> "_At":
        nl, eol = prefix.rfind("\n"), suffix.find("\n")
        line_after = suffix if eol < 0 else suffix[:eol]
        return cls(line_before=prefix[nl + 1:], line_after=line_after, eol=eol,
                   above=prefix.rsplit("\n", 5)[-5:-1],
                   mid_line=mid_line(line_after))


def postprocess_trace(
    raw: str,
    prefix: str,
    suffix: str,
    options: PostprocessOptions = PostprocessOptions(),
    syntax_errors: SyntaxErrors | None = None,
    *,
    truncated: bool = False,
) -> Postprocessed:
    """``postprocess`` with the names of the steps that changed the text."""
    crlf = "\r\n" in prefix or "\r\n" in suffix
    raw, prefix, suffix = _lf(raw, prefix, suffix)
    syn = _syntax_for(options.language)
    applied: list[str] = []
    text = raw

    def step(name: str, new: str) -> None:
        nonlocal text
        if new != text:
            applied.append(name)
            text = new

    at = _At.of(prefix, suffix)
    line_before, line_after, mid_line = at.line_before, at.line_after, at.mid_line

    step("stop", _cut_at_special(text))
    generated = text
    if not text.strip():
        step("blank", "")
    if text and (mid_line or not options.multiline):
        step("single_line", text.split("\n", 1)[0])
    if text and "\n" in text:
        step("scope", keep_lines(text, scope_end(text, line_before, syn, options.tab_size)))
    if text:
        tail = line_after if "\n" not in text else ""
        step("repeat", keep_lines(text, repeat_end(text, line_before, tail, at.above)))
    if text and not mid_line:
        step("next_lines", keep_lines(text, next_lines_end(text, line_before, suffix, at.eol)))
    if text:
        step("max_lines", keep_lines(text, options.max_lines))
    if text and truncated and text == generated:  # no step cut it: it ends where the limit did
        step("unfinished", unfinished_cut(text))
    if text:
        step("brackets", _cut_supplied_closer(text, line_before, suffix, syn, options.tab_size))
    if text and line_after:
        step("line_overlap", _trim_line_overlap(text, line_after, options.min_overlap_chars))
    if text:
        step("trailing", _trim_trailing(text, at_line_end=not line_after.strip()))
    if text and syntax_errors is not None:
        step("syntax", _syntax_cut(text, prefix, suffix, syntax_errors, options.max_syntax_checks))
    if text and not text.strip():
        step("blank", "")
    if crlf:
        text = text.replace("\n", "\r\n")
    return Postprocessed(text, tuple(applied))


# --------------------------------------------------------------------------- helpers


def _cut_at_special(text: str) -> str:
    if "<" not in text:
        return text
    cut = len(text)
    for tok in _STOP_AT:
        i = text.find(tok, 0, cut)
        if i >= 0:
            cut = i
    return text[:cut]


def _unclosed(line: str, syn: _Syntax) -> int:
    depth = 0
    for _, b in _brackets(line, syn):
        depth = depth + 1 if b in _OPENERS else max(depth - 1, 0)
    return depth


def _suffix_closers(suffix: str, line_indent: int, tab: int) -> list[tuple[str, int]]:
    """The closing brackets the suffix starts with (whitespace between them skipped), each with
    the indent of its line (``line_indent`` while still on the cursor's line)."""
    out: list[tuple[str, int]] = []
    indent = line_indent
    for i, c in enumerate(suffix):
        if c == "\n":
            indent = _indent(suffix[i + 1:i + 81], tab)
        elif c in _CLOSERS:
            out.append((c, indent))
        elif not (c.isspace() or c in _QUOTES):  # auto-closed quotes sit among the closers
            break
    return out


def _cut_supplied_closer(text: str, line_before: str, suffix: str, syn: _Syntax, tab: int) -> str:
    """Cut at the first closing bracket the suggestion did not open if the suffix supplies it.

    A closer that starts a line is supplied by a suffix closer of the same kind at the same
    indentation (so the ``}`` of an inner block is not confused with the function's); one inside
    a line by any suffix closer of its kind, after the brackets the cursor's line left open have
    taken what the suffix lacks (``foo(bar(`` + ``x))`` + ``)`` keeps one).
    """
    if not any(c in text for c in _CLOSERS):
        return text
    supplied = _suffix_closers(suffix, _indent(line_before, tab), tab)
    if not supplied:
        return text
    kinds = {c for c, _ in supplied}
    spare = max(_unclosed(line_before, syn) - len(supplied), 0)
    full = line_before + text
    stack: list[str] = []
    for pos, b in _suggestion_brackets(line_before, text, syn):
        if b in _OPENERS:
            stack.append(b)
            continue
        if stack and stack[-1] == _CLOSE_TO_OPEN[b]:
            stack.pop()
            continue
        at = len(line_before) + pos
        line_start = full.rfind("\n", 0, at) + 1
        if not full[line_start:at].strip():  # a closing line
            if (b, _indent(full[line_start:], tab)) in supplied:
                return text[:pos]
        elif spare:
            spare -= 1
        elif b in kinds:
            return text[:pos]
    return text


def _trim_line_overlap(text: str, line_after: str, min_chars: int) -> str:
    """Drop a tail of the suggestion that repeats the start of the rest of the line."""
    rest = line_after.rstrip()
    first, newline, _ = text.partition("\n")
    if newline and rest and first.rstrip().endswith(rest):
        return first.rstrip()[: -len(rest)]  # the model finished the line itself, then went on
    last = text[text.rfind("\n") + 1:]
    for k in range(min(len(last), len(rest)), 0, -1):
        head = rest[:k]
        if not head.strip(_CLOSERS + " \t"):
            continue  # brackets alone are the ``brackets`` step's business
        if last.endswith(head) and (k == len(rest) or k >= min_chars or not _ALNUM.search(head)):
            return text[: len(text) - k]
    return text


def _trim_trailing(text: str, at_line_end: bool) -> str:
    if at_line_end:
        return text.rstrip()
    head, sep, last = text.rpartition("\n")
    while sep and not last.strip():  # blank trailing lines
        head, sep, last = head.rpartition("\n")
    return head + sep + last


def _syntax_cut(text: str, prefix: str, suffix: str, count: SyntaxErrors, limit: int) -> str:
    """The longest prefix of ``text`` (lines, then tokens) adding no syntax error."""
    base = count(prefix + suffix)
    checks = 1

    def ok(cand: str) -> bool:
        nonlocal checks
        checks += 1
        return count(prefix + cand + suffix) <= base

    if ok(text):
        return text
    lines = text.split("\n")
    k = 0
    for n in range(len(lines) - 1, 0, -1):
        if checks >= limit:
            return ""
        if ok("\n".join(lines[:n])):
            k = n
            break
    head = "\n".join(lines[:k]) + ("\n" if k else "")
    line = lines[k]
    ends = [m.end() for m in _TOKEN_END.finditer(line) if m.end() < len(line.rstrip())]
    for e in reversed(ends):
        if checks >= limit:
            break
        if ok(head + line[:e]):
            return head + line[:e]
    return head.removesuffix("\n") if k else ""
