"""What the definitions provider keeps from one request to the next, so that a request (the
first one after ``prepare`` included) reads instead of computing: the renderings of indexed
definitions (``rendered``: made once per file content, not per request), and the files the
names of a document find without an import, loaded when the document is prepared
(``prepare_lookups``). The same-folder name table is ``names.folder_names``; the similar-chunk
postings ``file_providers.chunk_postings``.
"""

from __future__ import annotations

import itertools
import posixpath
import threading
import weakref
from collections import OrderedDict
from typing import Callable

from .index import FileEntry
from .languages import spec
from .names import SAME_FOLDER, _Resolver, folder_names
from .request import Request
from .symbols import Definition

#: Renderings kept, the least recently used dropped beyond this (a prepared document renders up to
#: ~900: its imported names, their modules' members and its own definitions).
RENDERS_KEPT = 16_384
_RENDERS: OrderedDict = OrderedDict()
_RENDERS_LOCK = threading.Lock()
#: Counts the renderings made (tests check that a request does not make them again).
renders_made = 0


#: A number per token counter seen (a rendering depends on the counter: ``tokens_over``), held
#: weakly: a key does not keep a counter (and the texts it memoises) alive.
_COUNTERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_COUNTERS_SEEN = itertools.count()


def _counter_key(count) -> object:
    try:
        with _RENDERS_LOCK:
            found = _COUNTERS.get(count)
            if found is None:
                found = _COUNTERS[count] = next(_COUNTERS_SEEN)
            return found
    except TypeError:  # not weakly referenceable (a builtin): kept by the key (such counters live forever)
        return count


def rendered(req: Request, entry: FileEntry, d: Definition, what: str,
             make: Callable[[Request, FileEntry, Definition], tuple]) -> tuple:
    """``make(req, entry, d)`` (``what`` names the kind of rendering), kept by the file's content,
    the definition and what the rendering depends on (the definition token limit, the token
    counter); made each time for a text that is not the indexed one (a document being typed: its
    request entry keeps the indexed text's digest)."""
    global renders_made
    if req.index.get(d.path) is not entry:
        renders_made += 1
        return make(req, entry, d)
    key = (what, d.path, entry.digest, d.start_line, d.end_line, d.name, d.kind, d.container,
           req.options.max_definition_tokens, _counter_key(req.count))
    with _RENDERS_LOCK:
        forms = _RENDERS.get(key)
        if forms is not None:
            _RENDERS.move_to_end(key)
            return forms
    forms = make(req, entry, d)
    with _RENDERS_LOCK:
        renders_made += 1
        _RENDERS[key] = forms
        while len(_RENDERS) > RENDERS_KEPT:
            _RENDERS.popitem(last=False)
    return forms


#: Files that ``prepare_lookups`` loads at most, per document.
LOOKUPS_PREPARED = 128
#: Families whose bare names resolve only through an import (``names._Resolver.resolve``).
_IMPORTED_ONLY = frozenset({"python", "js", "go", "java", "rust"})


def prepare_lookups(req: Request, resolver: _Resolver, uses) -> int:
    """Load (decode their symbols, file them by name, split their lines) the files that the names
    of the document find without an import of theirs: the files a wildcard import or ``#include`` brings in, the
    files of the folder (C/C++, Go, Java) defining a name it uses, and the files the lookup by name
    finds for a name that few files define (``qual.member`` in every language; every name in C/C++
    and the languages without imports). A request near any of these names then only reads them
    (the first request decoded and split ~20 such files: ~10 ms in a C++ header). ``uses`` is the
    document's ``definitions.Uses``. At most ``LOOKUPS_PREPARED`` files; returns how many."""
    index, here, o = req.index, req.path, req.options
    targets: dict[str, None] = {}
    for w in resolver.wildcards:
        targets.update(dict.fromkeys(resolver.files(w.module)))
    folder = folder_names(index, posixpath.dirname(here)) if req.family in SAME_FOLDER else None
    members = None  # (None: every name may be looked up by name)
    if req.family in _IMPORTED_ONLY:  # a bare name needs an import there: only members are looked up by name
        members = {m for _, mem in uses.members.values() for m in mem}
    sp = spec(req.entry.language)
    kw = sp.keywords if sp else frozenset()
    for name in uses.names:
        if len(targets) >= LOOKUPS_PREPARED:
            break
        if len(name) < 3 or name in kw or name in resolver.bindings:
            continue
        found = folder.table.get(name) if folder is not None else None
        if not found and (members is None or name in members):
            certain, possible = index.files_defining(name)
            found = [p for p in certain + possible if p != here]
            if len(found) > o.max_ambiguity:
                continue
        if found:
            targets.update(dict.fromkeys(p for p in found if p != here))
    n = 0
    for p in list(targets)[:LOOKUPS_PREPARED]:
        e = index.get(p)
        if e is not None:
            e.defs_named("")  # decoded and kept, with its table by name: what a lookup in it reads
            e.lines  # noqa: B018  (what a rendering reads)
            n += 1
    return n
