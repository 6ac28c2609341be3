"""Related fragments: for a file fragment, the fragments of other files that define what it uses.

The server puts the definitions a file uses (through its imports) before the file being completed
(``sc2lsp/context``). Repository-format samples whose files are grouped by directory and shuffled
rarely show a model that situation, so a small model never learns to copy from the front of its
prompt. ``make_documents(related_rate=...)`` uses this module to put, before a fragment, the
fragments of the files its imports point at that define the names it uses, in that order.

A name counts when the fragment's file imports it (``from m import name``) or reaches it through an
imported module (``nx.path_graph`` with ``import networkx as nx``), and at most ``max_defs`` other
files define it (a method name defined everywhere points at nothing in particular). Definitions and
imports come from the server's tags queries (``sc2lsp.context.symbols.extract``).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from typing import Sequence

from sc2lsp.context.languages import language_for
from sc2lsp.context.symbols import extract

USE_KINDS = frozenset({"function", "method", "class", "struct", "interface", "enum", "type", "impl"})

#: a name, with the name before it when it is reached as ``qualifier.name``
USE = re.compile(r"(?:([A-Za-z_$][\w$]*)\.)?([A-Za-z_$][\w$]*)")

Fragment = tuple[str, int]  #: (path, index of the fragment in the file)


def _starts(frags: Sequence[str]) -> list[int]:
    """The first line (0-based) of each fragment of a file."""
    out, line = [], 0
    for f in frags:
        out.append(line)
        line += f.count("\n")
    return out


def related_fragments(files: Sequence[tuple[str, str]], frags: dict[str, list[str]], *, max_related: int = 2,
                      max_defs: int = 3) -> dict[Fragment, list[Fragment]]:
    """``(path, i) -> [(other path, j), ...]``: up to ``max_related`` fragments of other files that
    define names fragment ``i`` of ``path`` uses through its imports, in the order of first use.
    ``frags`` holds each file's fragments (``split_fragments``), which concatenate to its text."""
    where: dict[str, set[Fragment]] = defaultdict(set)
    imported: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for path, text in files:
        syms = extract(path, text, language_for(path))
        starts = _starts(frags[path])
        for d in syms.definitions:
            if d.kind in USE_KINDS:
                where[d.name].add((path, bisect_right(starts, d.start_line) - 1))
        names = frozenset(i.name.split(".")[-1] for i in syms.imports if i.name)
        imported[path] = (names, frozenset(i.binding for i in syms.imports if i.binding))
    out: dict[Fragment, list[Fragment]] = {}
    for path, _ in files:
        names, qualifiers = imported[path]
        for j, frag in enumerate(frags[path]):
            found: list[Fragment] = []
            for m in USE.finditer(frag):
                qual, name = m.groups()
                if name not in names and qual not in qualifiers:
                    continue
                defs = [f for f in where.get(name, ()) if f[0] != path]
                if not 1 <= len({p for p, _ in defs}) <= max_defs:
                    continue
                for f in sorted(defs):
                    if f not in found:
                        found.append(f)
                if len(found) >= max_related:
                    break
            if found:
                out[(path, j)] = found[:max_related]
    return out
