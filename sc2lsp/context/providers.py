"""The four context providers: each turns a ``Request`` into ranked ``Candidate`` snippets.

* ``definitions``: definitions of the identifiers used near the cursor (its line first, then
  imported names not used elsewhere in the file yet, then the lines around, then the other
  imports), resolved through the file's imports (``from .x import f``, ``import {f} from "./x"``,
  ``require``, ``use crate::x::f``, ``#include``, Go/Java packages), else by name across the
  repository when the name is not ambiguous;
* ``outline``: when the window cuts the current file, its enclosing class (or the module) as
  signatures of what lies outside the window, nearest first;
* ``edits``: recently edited regions (from consecutive ``apply_change`` texts);
* ``similar``: windows of open and recently used files most similar (Jaccard over identifier
  sets) to the lines before the cursor.

A provider checks ``req.check()`` in its loops and stops when its time is up. Fitting the
candidates into the budget and rendering blocks is ``gather.py``'s job.
"""

from __future__ import annotations

import logging
import posixpath
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..core.prompt import SourceFile
from . import render
from .index import FileEntry, RepoIndex
from .languages import spec
from .render import Snippet
from .resolve import module_files
from .symbols import CLASS_LIKE, IDENTIFIER, Definition

log = logging.getLogger(__name__)

PROVIDERS = ("definitions", "outline", "edits", "similar")
#: Each provider's time on a request. The server gathers on a request only when the whole prompt is
#: evaluated anyway (the first request in a document, a cursor that moved: hundreds of milliseconds
#: of prompt even for a 6M-parameter model); a keystroke reuses the committed context.
REQUEST_BUDGET_MS = 150.0


@dataclass(frozen=True)
class ContextOptions:
    priority: tuple[str, ...] = PROVIDERS
    """Providers in the order they are served from the budget (leave one out to disable it)."""
    render_order: tuple[str, ...] = ("outline", "definitions", "edits", "similar")
    """Order of the blocks in the prompt (stable, file-level context first)."""
    shares: dict[str, float] = field(default_factory=lambda: {
        "definitions": 0.85, "outline": 0.25, "edits": 0.15, "similar": 0.25})
    """The most of the budget each provider may take."""
    time_budget_ms: dict[str, float] = field(default_factory=lambda: {p: REQUEST_BUDGET_MS for p in PROVIDERS})
    """A provider not done by then is skipped (it finishes in the background; the next warm-up,
    which has no time budget, brings its blocks)."""
    max_definition_tokens: int = 160
    """A definition longer than this is shown elided (signature, doc, ``...``) or as an outline."""
    lines_above: int = 40
    lines_below: int = 12
    max_names: int = 64
    max_ambiguity: int = 3
    """A name with more definitions than this in the repository is only resolved through imports."""
    per_name: int = 2
    chunk_lines: int = 12
    chunk_stride: int = 6
    query_lines: int = 12
    min_similarity: float = 0.2
    max_chunks: int = 3
    max_edits: int = 4
    edit_margin: int = 2
    max_edit_lines: int = 24


@dataclass(frozen=True)
class ContextBlock:
    path: str
    code: str
    provider: str
    reason: str
    tokens: int
    lines: tuple[tuple[int, int], ...]  #: 0-based inclusive line ranges of ``path`` shown

    def source_file(self) -> SourceFile:
        return SourceFile(self.path, self.code)


@dataclass(frozen=True)
class Candidate:
    path: str
    snippets: tuple[Snippet, ...]
    reason: str
    compact: tuple[Snippet, ...] | None = None  #: a shorter rendering used when the full one does not fit


class Late(Exception):
    """Raised by ``Request.check`` when the provider's time is up."""


@dataclass
class Request:
    index: RepoIndex
    path: str
    text: str
    offset: int
    entry: FileEntry
    family: str
    cursor_line: int
    window: tuple[int, int]  #: lines of the current file already in the prompt (inclusive)
    options: ContextOptions
    count: Callable[[str], int]
    budget: int = 0  #: tokens of the whole context; providers stop ranking well past it (0: no limit)
    deadline: float = 0.0
    cancelled: threading.Event = field(default_factory=threading.Event)

    def enough(self, spent: int) -> bool:
        """True once candidates worth ``spent`` tokens (short forms) exceed what could be used."""
        return 0 < self.budget * 2 < spent

    def check(self) -> None:
        if self.cancelled.is_set() or time.perf_counter() > self.deadline:
            raise Late()

    def in_window(self, path: str, start: int, end: int) -> bool:
        return path == self.path and start <= self.window[1] and end >= self.window[0]


# -- (a) definitions --------------------------------------------------------------------------------

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

    def by_name(self, name: str, prefer: tuple[str, ...] = ()) -> list[Definition]:
        if len(name) < 3:
            return []  # too short to guess from
        found = [d for d in self.req.index.definitions_named(name) if d.path != self.req.path]
        if prefer:
            preferred = [d for d in found if d.path in prefer]
            if preferred:
                return preferred
        if len(found) > self.req.options.max_ambiguity:
            return []
        here = self.req.path
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
        if name in self.own:
            return [d for d in self.own[name] if d.container is None or d.kind in CLASS_LIKE][:1], f"{name} in this file"
        imp = self.bindings.get(name)
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
        if req.family in ("go", "java", "c"):  # same package / folder
            same = tuple(p for p in req.index.files_in_dir(posixpath.dirname(req.path)) if p != req.path)
            found = _defs_in(req, same, name, top_level=req.family != "java")
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


#: More characters per token than code ever has (long runs of indentation included): a text longer
#: than ``limit * CHARS_PER_TOKEN_MAX`` has more than ``limit`` tokens without counting them.
CHARS_PER_TOKEN_MAX = 10


def tokens_over(req: Request, text: str, limit: int) -> bool:
    """Whether ``text`` has more than ``limit`` tokens; a long text is not tokenized to find out
    (a 180-line class costs milliseconds in a real tokenizer)."""
    return len(text) > limit * CHARS_PER_TOKEN_MAX or req.count(text) > limit


def _definition_candidate(req: Request, d: Definition, reason: str) -> Candidate | None:
    entry = req.index.get(d.path) if d.path != req.path else req.entry
    if entry is None or d.start_line >= len(entry.lines):
        return None
    whole = render.full(entry, d)
    if tokens_over(req, whole.text, req.options.max_definition_tokens):
        whole = render.outline(entry, d) if d.kind in CLASS_LIKE else render.elided(entry, d)
    short = render.elided(entry, d)  # signature (and doc) first; the rest when the budget has room
    if short.text == whole.text:
        short = None
    head = render.container_header(entry, d)
    extra = (head,) if head is not None else ()
    return Candidate(d.path, extra + (whole,), reason, (extra + (short,)) if short is not None else None)


def _query_names(req: Request, resolver: "_Resolver", near) -> tuple[list, list]:
    """Names to look up, most wanted first: the cursor's line; names imported but not used in the
    file yet (about to be used); then the lines around the cursor interleaved with the file's
    other uses of what it imports, the most used first (imported names, and members of imported
    modules and objects, ``mod.func``, ``out.result``, as written in the file, nearest the cursor
    first): a name the file uses everywhere is as likely on the next line as one a few lines up."""
    on_line = len(_line_names(req, req.cursor_line, bindings=resolver.bindings))
    unused, used = [], []
    for binding, imp in resolver.bindings.items():
        if imp.name is None and req.family != "js":
            continue  # a module alias: nothing to show for the name itself
        n = req.entry.occurrences(binding, USES_COUNTED)
        if n <= 1:
            unused.append((binding, None))
        else:
            used.append((-(n - 1), len(used), (binding, None)))  # (the import itself is one)
    qualifiers: dict[str, int] = {}
    for qual in resolver.bindings:
        for key, n in _member_uses(req, qual).items():
            used.append((-n, len(used), key))
            qualifiers[qual] = qualifiers.get(qual, 0) + n
    ranked = [k for *_, k in sorted(used)]
    around = near[on_line:]
    mixed = [k for pair in zip(around, ranked) for k in pair] + around[len(ranked):] + ranked[len(around):]
    by_use = sorted(qualifiers, key=lambda q: (-qualifiers[q], q))
    return list(dict.fromkeys(near[:on_line] + unused + mixed)), by_use


#: Uses of an imported name counted when ranking the file's other imports (the most used first).
USES_COUNTED = 32


def _member_uses(req: Request, qual: str, limit: int = USES_COUNTED) -> dict[tuple[str, str], int]:
    """``{(member, qual): uses}`` for ``qual.member`` in the request's text, at most ``limit``
    occurrences, the nearest to the cursor first (``str.find``/``rfind``: no scan of a whole
    large file)."""
    text, pat = req.text, qual + "."
    kw = spec(req.entry.language).keywords if spec(req.entry.language) else frozenset()
    out: dict[tuple[str, str], int] = {}
    back, fwd, seen = req.offset, req.offset, 0
    while seen < limit and (back >= 0 or fwd >= 0):
        hits = []
        if back >= 0:
            i = text.rfind(pat, 0, back)
            back = i if i > 0 else -1
            hits.append(i)
        if fwd >= 0:
            j = text.find(pat, fwd)
            fwd = j + len(pat) if j >= 0 else -1
            hits.append(j)
        for i in hits:
            if i < 0 or (i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_$.")):
                continue
            m = IDENTIFIER.match(text, i + len(pat))
            if m is None or m.group() in kw:
                continue
            seen += 1
            key = (m.group(), qual)
            out[key] = out.get(key, 0) + 1
    return out


def definitions_provider(req: Request) -> list[Candidate]:
    """Candidates in this order: definitions of the names near the cursor (and of imports about to
    be used) interleaved with those of the file's other imports, the most used first; members of
    the modules/classes/objects used as qualifiers near the cursor, then elsewhere in the file;
    last, definitions found by name only. A candidate whose short form is over the provider's
    share of the budget is left out (it could never be shown)."""
    resolver = _Resolver(req)
    out: list[Candidate] = []
    guesses: list[Candidate] = []
    seen: set[tuple[str, int]] = set()
    spent = 0
    near = names_near_cursor(req, resolver.bindings)
    first, qualifiers = _query_names(req, resolver, near)
    cap = req.budget * req.options.shares.get("definitions", 1.0)

    def take(c: Candidate, guess: bool = False) -> bool:
        nonlocal spent
        cost = sum(req.count(s.text) for s in (c.compact or c.snippets))
        if req.budget and cost > cap:
            return False  # can never fit: it must not use up the ranking's room either
        (guesses if guess else out).append(c)
        spent += cost
        return req.enough(spent)

    def names(keys) -> bool:
        for name, qual in keys:
            req.check()
            found, how = resolver.resolve(name, qual)
            for d in found[: req.options.per_name]:
                if (d.path, d.start_line) in seen or req.in_window(d.path, d.start_line, d.end_line):
                    continue
                seen.add((d.path, d.start_line))
                c = _definition_candidate(req, d, how)
                if c is not None and take(c, how.endswith(" by name")):
                    return True
        return False

    def members() -> bool:
        # ``util.parse(...)`` above: the line being written may call another member of ``util``;
        # then the other modules and objects the file uses as qualifiers, the most used first
        # and last the imported objects the file has not used as qualifiers yet (``out = Output()``)
        objects = [b for b, imp in resolver.bindings.items() if imp.name is not None and b[:1].islower()]
        for qual in dict.fromkeys([q for _, q in near if q in resolver.bindings] + qualifiers + objects):
            entry, defs = _members_of(req, resolver, qual)
            for d in defs:
                req.check()
                if (d.path, d.start_line) in seen:
                    continue
                seen.add((d.path, d.start_line))
                head = render.container_header(entry, d)
                if take(Candidate(d.path, ((head,) if head else ()) + (render.elided(entry, d),), f"member of {qual}")):
                    return True
        return False

    names(first)
    spent = 0  # members get their own room: long signatures above must not crowd them out
    members()
    return out + guesses


def prepare_definitions(req: Request, limit: int = 400) -> int:
    """Do ahead of the first request what the definitions provider needs for this file: resolve
    its imports, build the name tables of the files they point at and render (and count: the
    token counter memoises) what the file's imported names and module members name. Returns the
    number of definitions prepared (at most ``limit``)."""
    resolver = _Resolver(req)
    done = 0
    keys = [(b, None) for b, imp in resolver.bindings.items() if imp.name is not None or req.family == "js"]
    for qual in resolver.bindings:
        keys += list(_member_uses(req, qual, limit).keys())
    for name, qual in keys:
        found, _ = resolver.resolve(name, qual)
        for d in found[: req.options.per_name]:
            c = _definition_candidate(req, d, "")
            if c is not None:
                for snip in c.compact or c.snippets:
                    req.count(snip.text)
            done += 1
            if done >= limit:
                return done
    return done


_INSTANCE = re.compile(r"=\s*([A-Z][\w$]*)\s*\(")
_MEMBER_ORDER = {"function": 0, "method": 0, "class": 1, "struct": 1, "interface": 1, "enum": 1, "type": 2}


def _members_of(req: Request, resolver: _Resolver, qual: str) -> tuple[FileEntry | None, list[Definition]]:
    """What ``qual.<member>`` can name: a module's top-level definitions, a class's members, or
    the members of the class an imported object is made from (``out = Output()``)."""
    imp = resolver.bindings[qual]
    files = resolver.module_of(imp)
    if files:
        entry = req.index.get(files[0])
        if entry is None:
            return None, []
        top = [d for d in entry.definitions if d.container is None and d.kind not in ("variable", "field")]
        return entry, sorted(top, key=lambda d: (_MEMBER_ORDER.get(d.kind, 3), d.start_line))
    found, _ = resolver.resolve(qual, None)
    for d in found[:1]:
        entry = req.index.get(d.path)
        if entry is None:
            continue
        if d.kind in ("variable", "constant"):
            m = _INSTANCE.search(d.signature)
            cls = [c for c in entry.defs_named(m.group(1)) if c.kind in CLASS_LIKE] if m else []
            if not cls:
                return entry, []
            d = cls[0]
        if d.kind in CLASS_LIKE:
            return entry, [m for m in render.members(entry, d) if m.kind != "field"]
    return None, []


# -- (b) outline of the current file ---------------------------------------------------------------

def outline_provider(req: Request) -> list[Candidate]:
    entry, (w0, w1) = req.entry, req.window
    if w0 <= 0 and w1 >= len(entry.lines) - 1:
        return []  # the whole file is in the prompt
    cur = req.cursor_line
    enclosing = [d for d in entry.definitions if d.kind in CLASS_LIKE and d.start_line <= cur <= d.end_line]
    if enclosing:
        cls = max(enclosing, key=lambda d: d.start_line)
        items = [d for d in render.members(entry, cls)]
        last = max(cls.start_line, cls.body_line - (entry.language == "python"))
        header = render.lines_snippet(entry, cls.start_line, last)
        what = f"outline of {cls.name}"
    else:
        cls, header = None, None
        items = [d for d in entry.definitions if d.container is None]
        what = "outline of this file"
    out: list[Candidate] = []
    if header is not None and not req.in_window(req.path, header.start, header.end):
        out.append(Candidate(req.path, (header,), what))
    items = [d for d in items if not req.in_window(req.path, d.start_line, d.end_line)]
    items.sort(key=lambda d: (min(abs(d.start_line - cur), abs(d.end_line - cur)), d.start_line))
    spent = 0
    for d in items:
        req.check()
        short = render.elided(entry, d)
        full = render.outline(entry, d) if d.kind in CLASS_LIKE else short
        out.append(Candidate(req.path, (full,), what, (short,) if full is not short else None))
        spent += req.count(short.text)
        if req.enough(spent):
            break
    return out


# -- (c) similar chunks ----------------------------------------------------------------------------

def _chunks(entry: FileEntry, size: int, stride: int, near: int | None = None, radius: int = 300,
            check: Callable[[], None] | None = None) -> list[tuple[int, int, frozenset[str]]]:
    """Windows of ``size`` lines every ``stride`` lines with their identifier sets (each computed
    once per entry, when first needed); with ``near`` (a line) only those within ``radius``."""
    table = entry.__dict__.setdefault("_chunk_map", {}).setdefault((size, stride), {})
    lines = entry.lines
    last = max(1, len(lines) - size + stride)
    lo, hi = (0, last) if near is None else (max(0, (near - radius) // stride * stride), min(last, near + radius))
    out = []
    for start in range(lo, hi, stride):
        c = table.get(start)
        if c is None:
            if check is not None:
                check()
            end = min(len(lines), start + size) - 1
            c = table[start] = (end, frozenset(IDENTIFIER.findall("\n".join(lines[start:end + 1]))))
        if c[1]:
            out.append((start, c[0], c[1]))
    return out


def similar_provider(req: Request) -> list[Candidate]:
    o = req.options
    before = req.text[: req.offset].split("\n")[-o.query_lines:]
    query = frozenset(IDENTIFIER.findall("\n".join(before)))
    if not query:
        return []
    scored: list[tuple[float, str, int, int]] = []
    paths = (req.path,) + tuple(p for p in req.index.recent_files() if p != req.path)
    for p in paths:
        entry = req.entry if p == req.path else req.index.get(p)
        if entry is None:
            continue
        near = req.cursor_line if p == req.path else None
        for start, end, toks in _chunks(entry, o.chunk_lines, o.chunk_stride, near, check=req.check):
            req.check()
            if req.in_window(p, start, end):
                continue
            inter = len(query & toks)
            if inter:
                score = inter / (len(query) + len(toks) - inter)
                if score >= o.min_similarity:
                    scored.append((-score, p, start, end))
    scored.sort()
    out = []
    for neg, p, start, end in scored:
        entry = req.entry if p == req.path else req.index.get(p)
        out.append(Candidate(p, (render.lines_snippet(entry, start, end),), f"similar lines (Jaccard {-neg:.2f})"))
        if len(out) >= o.max_chunks * 3:  # overlapping chunks are dropped at allocation
            break
    return out


# -- (d) recent edits -------------------------------------------------------------------------------

def edits_provider(req: Request) -> list[Candidate]:
    o = req.options
    out = []
    for e in req.index.recent_edits():
        req.check()
        entry = req.entry if e.path == req.path else req.index.get(e.path)
        if entry is None:
            continue
        start = max(0, e.start - o.edit_margin)
        end = min(len(entry.lines) - 1, e.end + o.edit_margin, start + o.max_edit_lines - 1)
        if req.in_window(e.path, start, end):
            continue
        out.append(Candidate(e.path, (render.lines_snippet(entry, start, end),), f"edited lines {e.start + 1}-{e.end + 1}"))
        if len(out) >= o.max_edits:
            break
    return out


PROVIDER_FUNCTIONS: dict[str, Callable[[Request], list[Candidate]]] = {
    "definitions": definitions_provider, "outline": outline_provider,
    "edits": edits_provider, "similar": similar_provider,
}
