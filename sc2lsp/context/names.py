"""Names near the cursor and what they name, for the definitions provider (``definitions.py``):
the (name, qualifier) pairs of the lines around the cursor, nearest first, and ``_Resolver``,
which resolves a name through the file's imports (``from .x import f``, ``import {f} from "./x"``,
``require``, ``use crate::x::f``, ``#include``, Go/Java packages), else by name across the
repository when the name is not ambiguous.
"""

from __future__ import annotations

import functools
import posixpath
import re
import threading
import weakref

from .languages import spec
from .request import Request
from .resolve import module_files
from .symbols import CLASS_LIKE, IDENTIFIER, Definition

def names_near_cursor(req: Request, bindings=frozenset()) -> list[tuple[str, str | None]]:
    """(name, qualifier) pairs near the cursor, nearest first: the cursor's line, then two lines
    above for each line below (keywords left out)."""
    lines = req.entry.lines if req.entry.text == req.text else req.text.split("\n")
    kw = spec(req.entry.language).keywords if spec(req.entry.language) else frozenset()
    cur = req.cursor_line
    order = [cur]
    above, below = cur - 1, cur + 1
    while (above >= max(0, cur - req.options.lines_above)) or (below <= min(len(lines) - 1, cur + req.options.lines_below)):
        for _ in range(2):
            if above >= max(0, cur - req.options.lines_above):
                order.append(above)
                above -= 1
        if below <= min(len(lines) - 1, cur + req.options.lines_below):
            order.append(below)
            below += 1
    seen: dict[tuple[str, str | None], None] = {}
    for ln in order:
        for key in _line_names(req, ln, lines, kw, bindings):
            if key not in seen:
                seen[key] = None
                if len(seen) >= req.options.max_names:
                    return list(seen)
    return list(seen)


def _line_names(req: Request, ln: int, lines: list[str] | None = None, kw: frozenset[str] | None = None,
                bindings=frozenset()):
    """(name, qualifier) of one line; ``obj.attr`` only when called or ``obj`` is an import."""
    if lines is None:
        lines = req.entry.lines if req.entry.text == req.text else req.text.split("\n")
    if kw is None:
        sp = spec(req.entry.language)
        kw = sp.keywords if sp else frozenset()
    if ln >= len(lines):
        return []
    line = lines[ln]
    out = []
    prev, prev_end = "", 0
    for m in IDENTIFIER.finditer(line):
        name, start = m.group(), m.start()
        after_keyword = prev in ("def", "class", "func", "fn") and not line[prev_end:start].strip()
        prev, prev_end = name, m.end()
        if name in kw or after_keyword:
            continue
        q = _qualifier(line, start)
        if q and q not in bindings and not line[m.end():m.end() + 3].lstrip().startswith("("):
            continue  # a field of some object: guessing its class by name is mostly noise
        out.append((name, q))
    return list(dict.fromkeys(out))


def _qualifier(line: str, start: int) -> str | None:
    """``obj`` when the name at ``start`` is written ``obj.name``, ``obj::name`` or ``obj->name``."""
    i = start
    while i > 0 and line[i - 1] in " \t":
        i -= 1
    if i > 0 and line[i - 1] == ".":
        i -= 1
    elif i > 1 and line[i - 2:i] in ("::", "->"):
        i -= 2
    else:
        return None
    while i > 0 and line[i - 1] in " \t":
        i -= 1
    j = i
    while j > 0 and (line[j - 1].isalnum() or line[j - 1] in "_$"):
        j -= 1
    return line[j:i] if j < i and not line[j].isdigit() else None


def _defs_in(req: Request, paths: tuple[str, ...], name: str, top_level: bool = False) -> list[Definition]:
    out = []
    for p in paths:
        e = req.index.get(p)
        if e is None:
            continue
        out += [d for d in e.defs_named(name) if not top_level or d.container is None]
    return out


#: Languages whose files see the names of the other files of their folder without an import.
SAME_FOLDER = frozenset({"go", "java", "c"})


class FolderNames:
    """Which files of one folder define each name (any kind, in path order), built once from
    their definitions and kept while the folder holds the same entries: the same-package lookup
    of C/C++, Go and Java (``_Resolver.resolve``) asks it for each name near the cursor instead of
    asking every file of the folder (a folder of 115 headers, 64 names: 7,000 lookups a request)."""

    __slots__ = ("entries", "table")

    def __init__(self, entries: tuple):
        self.entries = tuple(map(weakref.ref, entries))  # (a replaced entry is not kept alive by it)
        table: dict[str, list[str]] = {}
        for e in entries:
            for d in e.definitions:
                paths = table.setdefault(d.name, [])
                if not paths or paths[-1] != e.path:
                    paths.append(e.path)
        self.table = table


#: index -> {folder: FolderNames}; at most ``FOLDERS_KEPT`` folders per index, the least recently used dropped.
_FOLDERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_FOLDERS_LOCK = threading.Lock()
FOLDERS_KEPT = 64
#: Counts the ``FolderNames`` built (what tests check is not done per request).
folder_tables_built = 0


def folder_names(index, directory: str) -> FolderNames:
    """The ``FolderNames`` of ``directory`` for the index as it is (built again only when a file of
    the folder was added, removed or changed: its entry is then another object)."""
    global folder_tables_built
    entries = tuple(e for e in map(index.get, index.files_in_dir(directory)) if e is not None)
    with _FOLDERS_LOCK:
        kept = _FOLDERS.setdefault(index, {})
        found = kept.pop(directory, None)
        if found is not None and len(found.entries) == len(entries) and all(
                a() is b for a, b in zip(found.entries, entries)):
            kept[directory] = found  # the most recently used last
            return found
    found = FolderNames(entries)  # (outside the lock: it may decode the folder's files)
    with _FOLDERS_LOCK:
        folder_tables_built += 1
        kept = _FOLDERS.setdefault(index, {})
        kept[directory] = found
        while len(kept) > FOLDERS_KEPT:
            del kept[next(iter(kept))]
    return found


class _Resolver:
    def __init__(self, req: Request):
        self.req = req
        self.bindings: dict[str, object] = {}
        self.wildcards = []
        for imp in req.entry.symbols.imports:
            if imp.wildcard:
                self.wildcards.append(imp)
            elif imp.binding:
                self.bindings.setdefault(imp.binding, imp)
        self._modules: dict[str, tuple[str, ...]] = {}
        self._imported: tuple[str, ...] | None = None
        self._folder: FolderNames | None = None
        self.own = {}
        for d in req.entry.definitions:
            self.own.setdefault(d.name, []).append(d)

    def files(self, module: str) -> tuple[str, ...]:
        if module not in self._modules:
            self._modules[module] = module_files(self.req.index, self.req.family, self.req.path, module)
        return self._modules[module]

    def imported_files(self) -> tuple[str, ...]:
        if self._imported is None:
            out: dict[str, None] = {}
            for imp in self.req.entry.symbols.imports:
                for p in self.files(imp.module):
                    out.setdefault(p, None)
            self._imported = tuple(out)
        return self._imported

    def in_folder(self, name: str, top_level: bool) -> list[Definition]:
        """``name``'s definitions in the other files of the request's folder (in path order)."""
        if self._folder is None:
            self._folder = folder_names(self.req.index, posixpath.dirname(self.req.path))
        paths = self._folder.table.get(name)
        if not paths:
            return []
        return _defs_in(self.req, tuple(p for p in paths if p != self.req.path), name, top_level)

    def by_name(self, name: str, prefer: tuple[str, ...] = ()) -> list[Definition]:
        if len(name) < 3:
            return []  # too short to guess from
        index, here = self.req.index, self.req.path
        if prefer:
            preferred = [d for d in index.definitions_named(name, prefer) if d.path != here]
            if preferred:
                return preferred
        if sum(p != here for p in index.files_defining(name)[0]) > self.req.options.max_ambiguity:
            return []  # ambiguous, known without decoding the files
        found = [d for d in index.definitions_named(name) if d.path != here]
        if len(found) > self.req.options.max_ambiguity:
            return []
        found.sort(key=lambda d: (-_closeness(d.path, here), d.path, d.start_line))
        return found

    def module_of(self, imp) -> tuple[str, ...]:
        """Files of an import binding used as a qualifier (``import a.b as m``, ``from . import m``)."""
        if imp.name and self.req.family == "python":
            files = self.files(f"{imp.module}{'' if imp.module.endswith('.') else '.'}{imp.name}")
            if files:
                return files
            return ()  # ``from m import obj``: obj is not a module
        return self.files(imp.module) if imp.name is None else ()

    def resolve(self, name: str, qual: str | None) -> tuple[list[Definition], str]:
        """(definitions, how) for a name; an empty list when it is local, external or unknown."""
        req = self.req
        if qual is not None:
            imp = self.bindings.get(qual)
            if imp is not None:
                module = imp.module
                if imp.name and req.family == "python":  # from pkg import module
                    module = f"{imp.module}{'' if imp.module.endswith('.') else '.'}{imp.name}"
                files = self.files(module) or (self.files(imp.module) if imp.name else ())
                found = _defs_in(req, files, name)
                return found, f"{qual}.{name} via import of {imp.module}"
            if qual in self.own and not any(d.kind in CLASS_LIKE for d in self.own[qual]):
                return [], "local"
            return self.by_name(name, self.imported_files()), f"{name} by name"
        imp = self.bindings.get(name)
        if name in self.own:
            top = [d for d in self.own[name] if d.container is None or d.kind in CLASS_LIKE][:1]
            if top or imp is None:
                return top, f"{name} in this file"
            # only a nested definition of that name (a member, or what a parser recovering from an
            # unfinished line took for one: ``return new Result(`` as a method): the import names it
        if imp is not None:
            if imp.name is None:
                files = self.files(imp.module)
                if req.family == "js" and files:  # a default import or require(): the exported value
                    found = _defs_in(req, files[:1], name, top_level=True) or _default_export(req, files[0])
                    return found, f"{name} imported from {imp.module}"
                return [], "module"  # a module alias: its members are resolved through the qualifier
            files = self.files(imp.module)
            found = _defs_in(req, files, imp.name, top_level=True) or _defs_in(req, files, imp.name)
            if not found and not files:
                return [], "external"
            return found, f"{name} imported from {imp.module}"
        for w in self.wildcards:
            found = _defs_in(req, self.files(w.module), name, top_level=True)
            if found:
                return found, f"{name} via {w.module}"
        if req.family in SAME_FOLDER:  # same package / folder
            found = self.in_folder(name, top_level=req.family != "java")
            if found:
                return found, f"{name} in the same package"
        if req.family in ("python", "js", "go", "java", "rust"):
            # a bare name from another file needs an import (or the package) in these languages:
            # what is left is local, built in or a word in a comment
            return [], "unresolved"
        return self.by_name(name), f"{name} by name"


_DEFAULT_EXPORT = re.compile(r"^\s*(?:module\.exports\s*=\s*|export\s+default\s+(?:(?:async\s+)?function\*?\s+|class\s+)?)"
                             r"([A-Za-z_$][\w$]*)", re.M)


def _default_export(req: Request, path: str) -> list[Definition]:
    """What ``module.exports = X`` / ``export default X`` of a JavaScript file names."""
    entry = req.index.get(path)
    if entry is None:
        return []
    m = _DEFAULT_EXPORT.search(entry.text)
    return _defs_in(req, (path,), m.group(1), top_level=True) if m else []


def _closeness(a: str, b: str) -> int:
    n = 0
    for x, y in zip(posixpath.dirname(a).split("/"), posixpath.dirname(b).split("/")):
        if x != y:
            break
        n += 1
    return n


_SUBWORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
#: Words too common in code to say which definition a line is about.
_COMMON = frozenset("""get set has the and for with from into this self none null true false str int
    dict list type types return value values data name names new make args kwargs any optional obj object
    item items key keys result results func function class def let const var return async await
    self cls none bool float string number void undefined that then else when what which""".split())


@functools.lru_cache(maxsize=65536)
def subwords(name: str) -> frozenset[str]:
    """The words of an identifier (``_create_progress_bar``, ``isOfflineMode``), lowercased, a
    plural ``s`` dropped, short and very common words left out."""
    out = set()
    for w in _SUBWORD.findall(name):
        w = w.lower()
        if len(w) >= 3 and w not in _COMMON:
            out.add(w[:-1] if w.endswith("s") and not w.endswith("ss") and len(w) > 3 else w)
    return frozenset(out)


def words_near_cursor(req: Request, above: int = 4, below: int = 4) -> frozenset[str]:
    """The words (``subwords``) of the lines around the cursor, comments and strings included:
    what the code there is about (``# create the progress bars``, ``offline mode is enabled``)."""
    return _words(text_near_cursor(req, above, below))


def text_near_cursor(req: Request, above: int = 4, below: int = 4) -> str:
    """The lines around the cursor (``above`` and ``below`` it), memoised per request."""
    key = ("near_text", above, below)
    if key in req.memo:
        return req.memo[key]
    text, off = req.text, req.offset
    start = off
    for _ in range(above + 1):
        start = text.rfind("\n", 0, start - 1) if start > 0 else -1
        if start < 0:
            break
    end = off
    for _ in range(below + 1):
        end = text.find("\n", end + 1)
        if end < 0:
            end = len(text)
            break
    req.memo[key] = text[max(0, start):end]
    return req.memo[key]


def _words(text: str) -> frozenset[str]:
    return frozenset().union(*(subwords(w) for w in _IDENT_OR_WORD.findall(text)))


_IDENT_OR_WORD = re.compile(r"[A-Za-z_$][\w$]*")
