"""Symbols of a changed Python file from its previous symbols and a parse of the changed statements only.

A save or an editor change usually touches one function (or appends one); parsing the whole
file again costs ~4 ms per 10 KB (tree-sitter parse + tags query + the Python objects), 20-80 ms
for the large files of a real repository. ``Rederive`` re-derives instead:

* the changed lines (first and last line that differ between the old and the new text, known
  when the change is applied: only the old text's changed lines are kept, never the whole text);
* the nearest top-level statement boundaries around them in the old text, taken from the old
  symbols: the first line (decorators included) of a definition at column 0 with no container,
  and the line after its end;
* the new text between those boundaries (the "fragment") is parsed alone, its definitions are
  shifted to their lines in the file, the old definitions before it are kept and those after it
  shifted by the change in line count.

This equals a full parse when the old text parsed without errors and the fragment parses
without errors (a Python module is a sequence of statements: at a boundary where the old parse
began a top-level statement nothing is open; a fragment with no error closes everything it
opens, and what follows it begins with a definition, a decorator or a statement that followed a
definition, none of which can continue a statement). Anything else (errors, an import changed
inside the fragment, another language) returns None: the caller parses the whole file.
``tests/context/test_incremental.py`` checks the equality on random edits of real files.
"""

from __future__ import annotations

import logging
from typing import Callable

from .symbols import Definition, FileSymbols, extract

log = logging.getLogger(__name__)

#: Languages re-derived here (others are parsed whole).
LANGUAGES = frozenset({"python"})


def changed_lines(a: list[str], b: list[str]) -> tuple[int, int, int]:
    """``(p, a_end, b_end)``: lines ``a[p:a_end]`` were replaced by ``b[p:b_end]``."""
    n = min(len(a), len(b))
    p = 0
    while p < n and a[p] == b[p]:
        p += 1
    s = 0
    while s < n - p and a[-1 - s] == b[-1 - s]:
        s += 1
    return p, len(a) - s, len(b) - s


def rederive(old, new) -> FileSymbols | None:
    """``new``'s symbols (a ``FileEntry`` of the changed text) from ``old``'s (the file's previous
    entry, parsed or in the compact form) and a parse of the changed statements only; None when
    that cannot be done (the caller parses the whole text, now or on first use)."""
    if new.language not in LANGUAGES or old.language != new.language:
        return None
    source = old._symbols
    if source is None:
        source = old._loader if old._names is not None else None  # a compact form (never a chain of loaders)
        if source is None:
            return None
    try:
        return Rederive(new.path, new.language, new.text, new.lines, source, old.lines)()
    except Exception:  # an optimisation: a bug here costs a full parse, never the change
        log.debug("re-deriving the symbols of %s failed", new.path, exc_info=True)
        return None


class Rederive:
    """A ``FileEntry`` loader: the new text's symbols from the old ones (``old``: the symbols, or
    the loader that decodes them) and the changed lines; None when a full parse is needed."""

    __slots__ = ("path", "language", "text", "old", "p", "old_end", "new_end", "old_mid", "fragment_lines")

    def __init__(self, path: str, language: str, text: str, lines: list[str],
                 old: FileSymbols | Callable[[], FileSymbols | None], old_lines: list[str]):
        self.path, self.language, self.text, self.old = path, language, text, old
        self.p, self.old_end, self.new_end = changed_lines(old_lines, lines)
        self.old_mid = old_lines[self.p:self.old_end]  #: the old text's changed lines, nothing more
        self.fragment_lines = 0  #: lines parsed by the last call (0: none; tests and benches)

    def __call__(self) -> FileSymbols | None:
        old = self.old if isinstance(self.old, FileSymbols) else self.old()
        self.old = None  # one use
        if old is None or old.errors:
            return None
        lines = self.text.split("\n")
        p, old_end, new_end = self.p, self.old_end, self.new_end
        delta = new_end - old_end

        def old_line(i: int) -> str:
            if i < p:
                return lines[i]
            if i < old_end:
                return self.old_mid[i - p]
            return lines[i + delta]

        n_old = len(lines) - delta
        start, end = 0, n_old  # the fragment in the old text's lines: [start, end)
        for d in old.definitions:
            if d.container is not None or d.start_line >= n_old or old_line(d.start_line)[:1] in ("", " ", "\t"):
                continue
            first = d.start_line
            while first > 0 and old_line(first - 1).startswith("@"):
                first -= 1
            for b in (first, d.end_line + 1):
                if b <= p:
                    start = max(start, b)
                if b >= old_end:
                    end = min(end, b)
        if start > p or end < old_end:
            return None
        new_stop = end + delta
        if not _starts_a_statement(lines, start, new_stop):
            return None
        # the doc of a variable is the comment right above it: no comment may touch a boundary
        if (start and "#" in lines[start - 1]) or any(
                0 < i < len(lines) and "#" in lines[i] for i in (new_stop - 1, new_stop)) or (
                end < n_old and "#" in old_line(end - 1)):
            return None
        head = sum(len(x) + 1 for x in lines[:start])
        size = sum(len(x) + 1 for x in lines[start:new_stop])
        fragment = self.text[head:head + size]
        self.fragment_lines = new_stop - start
        got = extract(self.path, fragment, self.language)
        if got.errors:
            return None
        imports = old.imports
        if "import" in fragment or any("import" in x for x in self.old_mid):
            old_fragment = "".join(old_line(i) + "\n" for i in range(start, end))
            if extract(self.path, old_fragment, self.language).imports != got.imports:
                return None  # an import changed: its place among the file's imports is not known here
        before = [d for d in old.definitions if d.start_line < start]
        if any(d.end_line >= start for d in before):
            return None
        after = [d for d in old.definitions if d.start_line >= end]
        return FileSymbols(tuple(before) + _shift(got.definitions, start) + _shift(after, delta), imports,
                           old.identifiers, 0)


_CONTINUING = ("else", "elif", "except", "finally")


def _starts_a_statement(lines: list[str], start: int, stop: int) -> bool:
    """The fragment's first line of code is at column 0 and cannot continue the statement before
    it (an indented line would extend the body of a definition above the fragment)."""
    for i in range(start, stop):
        line = lines[i]
        code = line.lstrip()
        if not code:
            continue
        if code is not line:
            return False  # indented code or comment: it may belong to the block above
        if not code.startswith("#"):
            return not code.startswith(_CONTINUING)
    return True


def _shift(defs, by: int) -> tuple[Definition, ...]:
    if not by:
        return tuple(defs)
    return tuple(Definition(d.name, d.kind, d.path, d.start_line + by, d.end_line + by, d.body_line + by,
                            d.signature, d.doc, d.container) for d in defs)
