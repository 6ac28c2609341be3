"""How a definition looks in a context block: in full, elided (signature, doc, ``...``) or as an
outline (a class header with the signatures of its members).

A rendering is a tuple of ``Snippet``s (line ranges of one file with their text); snippets of
one block are joined in line order with an elision line (``# ...`` / ``// ...``) between ranges
that do not touch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .index import FileEntry
from .languages import spec
from .symbols import CLASS_LIKE, Definition


@dataclass(frozen=True, slots=True)
class Snippet:
    start: int  #: first line (0-based)
    end: int  #: last line, inclusive
    text: str


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def comment(entry: FileEntry) -> str:
    sp = spec(entry.language)
    return sp.comment if sp else "#"


def is_python(entry: FileEntry) -> bool:
    return entry.language == "python"


def lines_snippet(entry: FileEntry, start: int, end: int) -> Snippet:
    lines = entry.lines
    end = min(end, len(lines) - 1)
    start = max(0, min(start, end))
    return Snippet(start, end, "\n".join(lines[start:end + 1]))


def full(entry: FileEntry, d: Definition) -> Snippet:
    return lines_snippet(entry, d.start_line, d.end_line)


def elided(entry: FileEntry, d: Definition) -> Snippet:
    """Signature (and doc) with the body left out; the whole text when it has no separate body."""
    lines = entry.lines
    if d.body_line <= d.start_line or d.end_line <= d.start_line or d.body_line > d.end_line:
        # one-line definitions, or a body on the signature line: at most the first line
        if d.end_line == d.start_line:
            return full(entry, d)
        head = lines[d.start_line] if d.start_line < len(lines) else d.signature
        if not is_python(entry) and head.rstrip().endswith("{"):  # f(x) {  ->  f(x) { /* ... */ }
            return Snippet(d.start_line, d.end_line, f"{head.rstrip()} /* ... */ }}")
        return Snippet(d.start_line, d.end_line, f"{head}\n{_indent(head)}    {comment(entry)} ...")
    inner = _indent(lines[d.start_line]) + "    "
    if is_python(entry):
        head = lines[d.start_line:d.body_line]
        doc = [f'{inner}"""{d.doc}"""'] if d.doc else []
        return Snippet(d.start_line, d.end_line, "\n".join(head + doc + [f"{inner}..."]))
    head = lines[d.start_line:d.body_line + 1]
    tail = [lines[d.end_line]] if d.end_line > d.body_line and d.end_line < len(lines) else []
    return Snippet(d.start_line, d.end_line, "\n".join(head + [f"{inner}{comment(entry)} ..."] + tail))


#: Signatures longer than this (lines) are not joined into one line by ``brief``.
JOIN_MAX_LINES = 40
_VALUE_KINDS = frozenset({"variable", "constant", "field"})


def _joined(head: list[str], entry: FileEntry) -> list[str]:
    """A signature spread over several lines as one line (the newlines and indentation cost a
    token or two per parameter); kept as it is when a line holds a comment."""
    if len(head) < 2 or len(head) > JOIN_MAX_LINES or any(comment(entry) in h or "/*" in h for h in head):
        return head
    one = head[0].rstrip()
    for h in head[1:]:
        h = h.strip()
        if not h:
            continue
        sep = "" if one.endswith(("(", "[", "{", "<")) or h.startswith((")", "]", "}", ">", ",")) else " "
        one += sep + h
    for a, b in ((",)", ")"), (",]", "]"), (", }", " }"), (",>", ">")):
        one = one.replace(a, b)
    return [one]


_ASSIGN = re.compile(r"(?<![=!<>])=(?![=>])")
#: A value that is a function or class: its first line is its signature.
_FUNCTION_VALUE = re.compile(r"(?:async\s+)?(?:function\b|class\b|lambda\b|\([^()]*\)\s*(?::[^=]*)?=>|[\w$]+\s*=>)")


#: A value up to this long is kept in a value's shortest form (``DEFAULT_REVISION = "main"``).
SHORT_VALUE = 24


def _value_head(line: str, more: bool) -> str:
    """``NAME: type = ...``: a value's name and declared type, its value left out unless it is short
    (a function or class assigned to the name is kept: that is its signature)."""
    m = _ASSIGN.search(line)
    if m is None:
        return line.rstrip()
    value = line[m.end():].strip()
    if (len(value) <= SHORT_VALUE and not more) or _FUNCTION_VALUE.match(value):
        return line.rstrip()
    return f"{line[:m.end()].rstrip()} ..."


def brief(entry: FileEntry, d: Definition) -> Snippet:
    """The signature alone, on one line where it can be (``def f(a, b) -> T: ...``,
    ``function f(a) { ... }``, a value's first line): the densest form that still says what the
    name is and how it is called. The line range is the whole definition's."""
    lines = entry.lines
    if d.start_line >= len(lines):
        return full(entry, d)
    first = lines[d.start_line]
    if d.kind in _VALUE_KINDS:
        return Snippet(d.start_line, d.end_line, _value_head(first, d.end_line > d.start_line))
    if d.end_line == d.start_line:
        return full(entry, d)
    if d.body_line <= d.start_line or d.body_line > d.end_line:
        if d.end_line - d.start_line < JOIN_MAX_LINES and not first.rstrip().endswith(("{", ":")):
            # a declaration without a body over several lines (an overload, a type): joined
            one = _joined(lines[d.start_line:d.end_line + 1], entry)
            if len(one) == 1:
                return Snippet(d.start_line, d.end_line, one[0])
        if is_python(entry) or not first.rstrip().endswith("{"):
            return Snippet(d.start_line, d.end_line, f"{first.rstrip()} ...")
        return Snippet(d.start_line, d.end_line, f"{_class_head(entry, d, first.rstrip())} /* ... */ }}")
    if is_python(entry):
        head = [h for h in lines[d.start_line:d.body_line] if not h.lstrip().startswith("#")]
        text = "\n".join(_joined(head, entry)).rstrip()
        return Snippet(d.start_line, d.end_line, f"{text} ..." if text.endswith(":") else f"{text}\n{_indent(first)}    ...")
    text = "\n".join(_joined(lines[d.start_line:d.body_line + 1], entry)).rstrip()
    text = _class_head(entry, d, text)
    if text.endswith("{"):
        return Snippet(d.start_line, d.end_line, f"{text} /* ... */ }}")
    return Snippet(d.start_line, d.end_line, text)


def _class_head(entry: FileEntry, d: Definition, text: str) -> str:
    """``text`` (a header) without its generic clutter when ``d`` is a TypeScript/Java class or interface."""
    sp = spec(entry.language)
    if d.kind in CLASS_LIKE and "\n" not in text and sp is not None and sp.family in ("js", "java"):
        return bare_type_arguments(text)
    return text


_CLASS_NAME = re.compile(r"\b(?:class|interface)\s+[\w$]+\s*")
_TYPE_PARAMETER = re.compile(r"\s*(?:(?:in|out|const)\s+)?([\w$]+)")


def bare_type_arguments(head: str) -> str:
    """A class or interface header with its type parameters' bounds and defaults and its bases'
    type arguments left out: ``class Result<S extends State = Base> extends FlowBase<S, Error>
    implements Storage<string> {`` -> ``class Result<S> extends FlowBase implements Storage {``.
    What the name is and what it derives from, in a third of the tokens (TypeScript's and Java's
    generic headers run to 40-60 tokens); the longer forms keep them."""
    m = _CLASS_NAME.search(head)
    if m is None:
        return head
    out, i = [head[:m.end()]], m.end()
    if head.startswith("<", i):
        end = _closing(head, i)
        if end < 0:
            return head
        names = [_TYPE_PARAMETER.match(p) for p in _top_level_split(head[i + 1:end])]
        if not all(names):
            return head
        out.append("<" + ", ".join(n.group(1) for n in names) + ">")
        i = end + 1
    while i < len(head):
        if head[i] == "<":
            end = _closing(head, i)
            if end < 0:
                return head
            i = end + 1
            continue
        out.append(head[i])
        i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int:
    """The index of the ``>`` closing the ``<`` at ``start`` (an arrow's ``=>`` is not one), or -1."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "<":
            depth += 1
        elif c == ">" and text[i - 1] != "=":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _top_level_split(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    parts, depth, last = [], 0, 0
    for i, c in enumerate(text):
        if c in "<([{":
            depth += 1
        elif c in ")]}" or (c == ">" and text[i - 1] != "="):
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return [p for p in parts if p.strip()]


def members(entry: FileEntry, d: Definition) -> list[Definition]:
    return [m for m in entry.definitions
            if m.container == d.name and d.start_line < m.start_line and m.end_line <= d.end_line]


def outline(entry: FileEntry, d: Definition) -> Snippet:
    """A class-like definition as its header plus its members' signatures."""
    if d.kind not in CLASS_LIKE or (d.body_line <= d.start_line and is_python(entry)):
        return elided(entry, d)
    lines = entry.lines
    inner = _indent(lines[d.start_line]) + "    "
    if is_python(entry):
        out = lines[d.start_line:d.body_line] + ([f'{inner}"""{d.doc}"""'] if d.doc else [])
    else:
        out = lines[d.start_line:d.body_line + 1]
    body = [elided(entry, m).text for m in members(entry, d)]
    if not body:
        out.append(f"{inner}..." if is_python(entry) else f"{inner}{comment(entry)} ...")
    out += body
    if not is_python(entry) and d.end_line > d.body_line:
        out.append(lines[d.end_line])
    return Snippet(d.start_line, d.end_line, "\n".join(out))


def container_header(entry: FileEntry, d: Definition) -> Snippet | None:
    """The first line of the class a method belongs to (so a method is not shown out of context)."""
    if d.container is None:
        return None
    for c in entry.definitions:
        if c.name == d.container and c.start_line < d.start_line <= c.end_line and c.kind in CLASS_LIKE:
            return lines_snippet(entry, c.start_line, c.start_line)
    return None


def marked(s: Snippet) -> bool:
    """Whether the snippet shows its own elision (``def f(x): ...``, ``f() { /* ... */ }``): no
    elision line goes before it in a block."""
    return s.text.rstrip().endswith(("...", "... */ }"))


def join(entry: FileEntry, snippets: list[Snippet]) -> str:
    """Snippets of one file in line order, with an elision line between ranges that do not touch
    (unless the snippet after the gap shows its own elision)."""
    out: list[str] = []
    last_end = None
    for s in sorted(snippets, key=lambda s: (s.start, s.end)):
        if last_end is not None and s.start > last_end + 1 and not marked(s):
            first = s.text.split("\n", 1)[0]
            out.append(f"{_indent(first)}{comment(entry)} ...")
        out.append(s.text)
        last_end = s.end if last_end is None else max(last_end, s.end)
    return "\n".join(out) + "\n"
