"""The ``definitions`` provider: definitions of the identifiers used near the cursor (its line
first, then imported names not used elsewhere in the file yet, then the lines around, then the
other imports), then members of the modules and objects used as qualifiers, resolved through the
file's imports by ``names.py``; and ``prepare_definitions``, which does that work ahead of the
first request.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right
from collections import Counter

from . import render
from .index import FileEntry
from .kept import prepare_lookups, rendered
from .languages import spec
from .names import _line_names, _Resolver, names_near_cursor, subwords, text_near_cursor, words_near_cursor
from .request import Candidate, Request
from .symbols import CLASS_LIKE, IDENTIFIER, Definition


#: More characters per token than code ever has (long runs of indentation included): a text longer
#: than ``limit * CHARS_PER_TOKEN_MAX`` has more than ``limit`` tokens without counting them.
CHARS_PER_TOKEN_MAX = 10


def tokens_over(req: Request, text: str, limit: int) -> bool:
    """Whether ``text`` has more than ``limit`` tokens; a long text is not tokenized to find out
    (a 180-line class costs milliseconds in a real tokenizer)."""
    if len(text) <= limit and text.isascii():
        return False  # a token is at least one byte
    return len(text) > limit * CHARS_PER_TOKEN_MAX or req.count(text) > limit


def _definition_candidate(req: Request, d: Definition, reason: str) -> Candidate | None:
    """``d`` as a candidate: its full text (an outline or elided when over the definition token
    limit), its signature and doc, its one-line brief. The renderings of an indexed file's
    definitions are made once (``prepare`` makes those of the names a document imports; a class's
    outline renders every member) and kept by the file's content (``kept.rendered``)."""
    entry = req.index.get(d.path) if d.path != req.path else req.entry
    if entry is None or d.start_line >= len(entry.lines):
        return None
    forms = rendered(req, entry, d, "candidate", _rendered)
    extra, whole, short, brief = forms
    return Candidate(d.path, extra + (whole,), reason, (extra + (short,)) if short is not None else None,
                     extra + (brief,))


def _member_forms(req: Request, entry: FileEntry, d: Definition) -> tuple:
    """(container header or nothing, elided, brief) of a member shown by the members phase."""
    head = render.container_header(entry, d)
    return (head,) if head is not None else (), render.elided(entry, d), render.brief(entry, d)


def _rendered(req: Request, entry: FileEntry, d: Definition) -> tuple:
    """(container header or nothing, whole, short or None, brief) of ``d`` in ``entry``."""
    whole = render.full(entry, d)
    if tokens_over(req, whole.text, req.options.max_definition_tokens):
        whole = render.outline(entry, d) if d.kind in CLASS_LIKE else render.elided(entry, d)
    short = render.elided(entry, d)  # signature and doc, then the rest, when the budget has room
    if short.text == whole.text or not d.doc:
        short = None  # (without a doc it says no more than the signature alone)
    head = render.container_header(entry, d)
    return (head,) if head is not None else (), whole, short, render.brief(entry, d)


def _query_names(req: Request, resolver: "_Resolver", near) -> tuple[list, list]:
    """Names to look up, most wanted first: the cursor's line; names imported but not used in the
    file yet (about to be used); then the lines around the cursor interleaved with the file's
    other uses of what it imports, the most used first (imported names, and members of imported
    modules and objects, ``mod.func``, ``out.result``, as written in the file, nearest the cursor
    first): a name the file uses everywhere is as likely on the next line as one a few lines up."""
    on_line = len(_line_names(req, req.cursor_line, bindings=resolver.bindings))
    unused, used = [], []
    # a long file: the import and the name's uses may be far from the cursor; where the whole text's
    # uses are indexed (a prepared document), an import used away from the cursor is not unused
    whole = _prepared(req) if _span(req) != (0, len(req.text)) else None
    for binding, imp in resolver.bindings.items():
        if imp.name is None and req.family != "js":
            continue  # a module alias: nothing to show for the name itself
        n = _uses(req, binding, USES_COUNTED)
        if n <= 1 and (whole is None or len(whole.of(binding)) <= 1):
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
    about = _about_here(req, resolver, unused + ranked, _qualifiers(near, resolver, by_use))
    return list(dict.fromkeys(near[:on_line] + unused + about + mixed)), by_use


def _qualifiers(near, resolver: "_Resolver", by_use: list[str]) -> list[str]:
    """The modules and objects whose members may be named next: those used as qualifiers near the
    cursor, then elsewhere in the file (the most used first), then the imported objects (``out =
    Output()``) the file has not used as qualifiers yet."""
    objects = [b for b, imp in resolver.bindings.items() if imp.name is not None and b[:1].islower()]
    return list(dict.fromkeys([q for _, q in near if q in resolver.bindings] + by_use + objects))


#: Members of one module or object compared with the words around the cursor.
MEMBERS_SCORED = 200


def _about_here(req: Request, resolver: "_Resolver", keys: list, quals: list[str]) -> list:
    """The imported names and members (of ``quals``) whose words are those of the lines around the
    cursor (``# create the progress bars`` -> ``_create_progress_bar``; ``offline mode is enabled``
    -> ``constants.is_offline_mode``): two words in common, or every word of a short name; the
    most words in common first."""
    here = words_near_cursor(req)
    if not here:
        return []
    found = list(keys)
    for qual in quals:
        req.check()
        found += [(d.name, qual) for d in _members_of(req, resolver, qual)[1][:MEMBERS_SCORED]]
    scored = []
    for i, (name, qual) in enumerate(dict.fromkeys(found)):
        imp = resolver.bindings.get(name) if qual is None else None
        words = subwords(name) | (subwords(imp.name) if imp is not None and imp.name else frozenset())
        if qual is not None:  # a member's words that name its class or module say nothing of the member
            words = words - subwords(qual)
        hit = len(words & here)
        if hit >= 2 or (hit and hit == len(words)):
            scored.append((-hit, i, (name, qual)))
    return [k for *_, k in sorted(scored)]


#: Uses of an imported name counted when ranking the file's other imports (the most used first).
USES_COUNTED = 32
#: Characters each side of the cursor searched for uses: a file of 700 KB is not scanned whole once
#: per imported name (a scan costs milliseconds there, and such a file imports a hundred names).
USE_WINDOW = 64_000


def _span(req: Request) -> tuple[int, int]:
    return max(0, req.offset - USE_WINDOW), min(len(req.text), req.offset + USE_WINDOW)


#: Runs of name characters (a name is used where a run is exactly that name), and ``qual.member``.
_RUN = re.compile(r"[\w$]+")
_QUALIFIED = re.compile(r"([\w$]+)\.([A-Za-z_$][A-Za-z0-9_$]*)")


class Uses:
    """Where each identifier and each ``qual.member`` of a text is (sorted offsets): counting the
    uses of a name near the cursor is then two bisections instead of a scan of the text per name
    and request (on a 700 KB file, a hundred scans cost more than the rest of the ranking). Built
    when the document is prepared (``uses_of``: one pass over the text); a text that was not
    (changed since) is scanned instead, with the same results."""

    __slots__ = ("names", "members")

    def __init__(self, text: str):
        names: dict[str, list[int]] = {}
        for m in _RUN.finditer(text):
            names.setdefault(m.group(), []).append(m.start())
        members: dict[str, tuple[list[int], list[str]]] = {}
        for m in _QUALIFIED.finditer(text):
            at = m.start()
            if at and text[at - 1] == ".":
                continue  # ``a.b.c``: ``b`` is not a qualifier of the file's (nor ``...spread``)
            pos, mem = members.setdefault(m.group(1), ([], []))
            pos.append(at)
            mem.append(m.group(2))
        self.names, self.members = names, members

    def of(self, name: str) -> list[int]:
        return self.names.get(name, [])


#: The ``Uses`` of the documents prepared last, by text.
_USES: dict[str, Uses] = {}
_USES_KEPT = 4
_USES_LOCK = threading.Lock()


def uses_of(text: str) -> Uses:
    """The ``Uses`` of ``text``, built once and kept (a string's hash is cached by Python, so
    finding it again costs one comparison)."""
    with _USES_LOCK:
        found = _USES.pop(text, None)
        if found is not None:
            _USES[text] = found  # the most recently used last
            return found
    found = Uses(text)
    with _USES_LOCK:
        _USES[text] = found
        while len(_USES) > _USES_KEPT:
            del _USES[next(iter(_USES))]
    return found


def _prepared(req: Request) -> Uses | None:
    """The ``Uses`` of the request's text if its document was prepared with this text (looked up
    once per request)."""
    if "uses" not in req.memo:
        req.memo["uses"] = _USES.get(req.text)
    return req.memo["uses"]


def _uses(req: Request, name: str, at_most: int) -> int:
    """How often the identifier ``name`` occurs within ``USE_WINDOW`` of the cursor, up to ``at_most``."""
    text, (lo, hi) = req.text, _span(req)
    uses = _prepared(req)
    if uses is not None:
        at = uses.of(name)
        return min(at_most, bisect_right(at, hi - len(name)) - bisect_left(at, lo))
    n, i, size = 0, lo, len(name)
    while n < at_most:
        i = text.find(name, i, hi)
        if i < 0:
            break
        end = i + size
        if (i == 0 or not _word(text[i - 1])) and (end == len(text) or not _word(text[end])):
            n += 1
        i = end
    return n


def _word(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _member_uses(req: Request, qual: str, limit: int = USES_COUNTED) -> dict[tuple[str, str], int]:
    """``{(member, qual): uses}`` for ``qual.member`` within ``USE_WINDOW`` of the cursor, at most
    ``limit`` occurrences, the nearest to the cursor first (one before it, one after, ...)."""
    kw = spec(req.entry.language).keywords if spec(req.entry.language) else frozenset()
    out: dict[tuple[str, str], int] = {}
    back, fwd = _member_hits(req, qual)
    seen = 0
    while seen < limit and (back is not None or fwd is not None):
        for hits in (back, fwd):
            name = next(hits, None) if hits is not None else None
            if name is None:
                back, fwd = (None, fwd) if hits is back else (back, None)
            elif name not in kw:
                seen += 1
                out[(name, qual)] = out.get((name, qual), 0) + 1
    return out


def _member_hits(req: Request, qual: str):
    """(before, after): iterators over the members of the ``qual.member`` uses within
    ``USE_WINDOW`` before the cursor (the nearest first) and after it."""
    text, (lo, hi), size = req.text, _span(req), len(qual) + 1
    uses = _prepared(req)
    if uses is not None:
        at, mem = uses.members.get(qual, ((), ()))
        first, last = bisect_left(at, lo), bisect_right(at, req.offset - size)  # (ends before the cursor)
        start, end = bisect_left(at, req.offset), bisect_right(at, hi - size)
        return (mem[i] for i in range(last - 1, first - 1, -1)), (mem[i] for i in range(start, end))
    return _scan(text, qual + ".", lo, req.offset, -1), _scan(text, qual + ".", req.offset, hi, 1)


def _scan(text: str, pat: str, lo: int, hi: int, step: int):
    """The members named after ``pat`` (``qual.``) in ``text[lo:hi]``, backwards if ``step`` < 0."""
    i = hi if step < 0 else lo
    while True:
        i = text.rfind(pat, lo, i) if step < 0 else text.find(pat, i, hi)
        if i < 0:
            return
        if not (i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_$.")):
            m = IDENTIFIER.match(text, i + len(pat))
            if m is not None:
                yield m.group()
        if step > 0:
            i += len(pat)


def definitions_provider(req: Request) -> list[Candidate]:
    """Candidates in this order: definitions of the names near the cursor (and of imports about to
    be used) interleaved with those of the file's other imports, the most used first; members of
    the modules/classes/objects used as qualifiers near the cursor, then elsewhere in the file;
    last, definitions found by name only. A candidate whose short form is over the provider's
    share of the budget is left out (it could never be shown)."""
    resolver = _Resolver(req)
    out: list[Candidate] = []
    guesses: list[Candidate] = []
    values: list[Candidate] = []  # ``NAME = ...``: nothing the file does not say yet until the value fits
    seen: set[tuple[str, int]] = set()
    spent = 0
    req.snapshot = lambda: out + values + guesses  # what a late request takes (``gather.assemble``)
    near = names_near_cursor(req, resolver.bindings)
    first, qualifiers = _query_names(req, resolver, near)
    cap = req.budget * req.options.shares.get("definitions", 1.0)

    def take(c: Candidate, guess: bool = False, value: bool = False) -> bool:
        nonlocal spent
        cost = sum(req.count(s.text) for s in c.tiers()[0])
        if req.budget and cost > cap:
            return False  # can never fit: it must not use up the ranking's room either
        (guesses if guess else values if value and _value_only(c) else out).append(c)
        spent += cost
        return req.enough(spent)

    def names(keys) -> bool:
        for name, qual in keys:
            req.check()
            found, how = resolver.resolve(name, qual)
            for d in _one_per_file(found)[: req.options.per_name]:
                if (d.path, d.start_line) in seen or req.in_window(d.path, d.start_line, d.end_line):
                    continue
                seen.add((d.path, d.start_line))
                c = _definition_candidate(req, d, how)
                # a value is only its name (said already) unless the file reaches into it (``provider.f()``);
                # so is a module's constant (``events.LOAD_TOKEN``)
                value = d.kind in VALUE_KINDS and (qual is not None or name not in qualifiers)
                if c is not None and take(c, how.endswith(" by name"), value):
                    return True
        return False

    def members() -> bool:
        # ``util.parse(...)`` above: the line being written may call another member of ``util``;
        # then the other modules and objects the file uses as qualifiers, the most used first
        # and last the imported objects the file has not used as qualifiers yet (``out = Output()``)
        for qual in _qualifiers(near, resolver, qualifiers):
            entry, defs = _members_of(req, resolver, qual)
            for d in defs:
                req.check()
                if (d.path, d.start_line) in seen:
                    continue
                seen.add((d.path, d.start_line))
                head, short, brief = rendered(req, entry, d, "member", _member_forms)
                if take(Candidate(d.path, head + (short,), f"member of {qual}", brief=head + (brief,))):
                    return True
        return False

    names(first)
    spent = 0  # members get their own room: long signatures above must not crowd them out
    members()
    return out + values + guesses


#: Kinds that name a type only (TypeScript keeps types and values apart: ``const X = {...} as const``
#: with ``type X = (typeof X)[keyof typeof X]`` is one name defined twice, both worth showing).
TYPE_ONLY = frozenset({"type", "interface"})


def _one_per_file(found: list[Definition]) -> list[Definition]:
    """The first definition of a name in each file, as a value and as a type: overloads
    (TypeScript's signatures before the implementation, ``@overload``) say the same name twice,
    and one signature shows how it is called."""
    keys: set[tuple[str, bool]] = set()
    out = []
    for d in found:
        key = (d.path, d.kind in TYPE_ONLY)
        if key not in keys:
            keys.add(key)
            out.append(d)
    return out


#: A value that is a literal: ``= "loadAccessToken";``, ``= 100207``, ``= True``.
_LITERAL = re.compile(r"""=\s*(?:-?\d[\w.]*|"[^"\\]*"|'[^'\\]*'|`[^`$\\]*`|true|false|True|False|None|null)"""
                      r"""\s*(?:as\s+const\s*)?;?\s*$""")


def _value_only(c: Candidate) -> bool:
    """A value whose shortest form leaves its value out (``NAME = ...``) or whose value is a
    literal (``LOAD_TOKEN = "loadToken"``): it says no more than the import or the use that named
    it (a literal is rarely what the next line needs), so it comes after every function and type."""
    if c.brief is None:
        return False
    text = c.brief[-1].text
    return text.endswith("= ...") or ("\n" not in text and _LITERAL.search(text) is not None)


def prepare_definitions(req: Request, limit: int = 400) -> int:
    """Do ahead of the first request what the definitions provider needs for this file: resolve
    its imports, build the name tables of the files they point at and render (and count: the
    token counter memoises) what the file's imported names and module members name, and index
    where the file uses each name (``uses_of``), and load the files that its names find without an
    import (``kept.prepare_lookups``). Returns the number of definitions prepared (at most ``limit``)."""
    resolver = _Resolver(req)
    uses = uses_of(req.text)  # where every name of the file is used (the ranking counts uses near the cursor)
    prepare_lookups(req, resolver, uses)
    done = 0
    keys = [(b, None) for b, imp in resolver.bindings.items() if imp.name is not None or req.family == "js"]
    quals = []
    for qual in resolver.bindings:  # ``qual.member`` anywhere in the file, the most used first
        found = uses.members.get(qual, ((), ()))[1]
        if found:
            keys += [(m, qual) for m, _ in Counter(found).most_common(limit)]
            quals.append(qual)
    for name, qual in keys:
        found, _ = resolver.resolve(name, qual)
        for d in found[: req.options.per_name]:
            c = _definition_candidate(req, d, "")
            if c is not None:
                for snip in c.tiers()[0]:
                    req.count(snip.text)
            done += 1
            if done >= limit:
                return done
    # the members the members phase shows (their signatures), up to ``limit`` of them
    members = 0
    for qual in _qualifiers([], resolver, quals):
        entry, defs = _members_of(req, resolver, qual)
        for d in defs[:MEMBERS_SCORED]:
            subwords(d.name)  # (memoised: the words ``_about_here`` compares)
            head, _, brief = rendered(req, entry, d, "member", _member_forms)
            for snip in head + (brief,):
                req.count(snip.text)
            members += 1
            if members >= limit:
                return done + members + _prepare_own(req)
    return done + members + _prepare_own(req)


#: The file's own top-level definitions that ``prepare_definitions`` renders and counts.
OWN_PREPARED = 100


def _prepare_own(req: Request) -> int:
    """Render and count the file's own top-level functions and classes (a name near the cursor may
    name one), at most ``OWN_PREPARED``; returns how many."""
    own = [d for d in req.entry.definitions if d.container is None][:OWN_PREPARED]
    for d in own:
        c = _definition_candidate(req, d, "")
        for snip in c.tiers()[0] if c is not None else ():
            req.count(snip.text)
    return len(own)


VALUE_KINDS = frozenset({"variable", "constant"})
_INSTANCE = re.compile(r"=\s*([A-Z][\w$]*)\s*\(")
_MEMBER_ORDER = {"function": 0, "method": 0, "class": 1, "struct": 1, "interface": 1, "enum": 1, "type": 2}


def _members_of(req: Request, resolver: _Resolver, qual: str) -> tuple[FileEntry | None, list[Definition]]:
    """What ``qual.<member>`` can name: a module's top-level definitions, a class's members, or
    the members of the class an imported object is made from (``out = Output()``). Memoised per
    resolver (one request)."""
    memo = resolver.__dict__.setdefault("_members", {})
    if qual not in memo:
        memo[qual] = _find_members(req, resolver, qual)
    return memo[qual]


def _find_members(req: Request, resolver: _Resolver, qual: str) -> tuple[FileEntry | None, list[Definition]]:
    imp = resolver.bindings[qual]
    files = resolver.module_of(imp)
    if files:
        entry = req.index.get(files[0])
        if entry is None:
            return None, []
        top = [d for d in entry.definitions if d.container is None and d.kind not in ("variable", "field")]
        return entry, sorted(top, key=lambda d: (_private(d.name), _MEMBER_ORDER.get(d.kind, 3), d.start_line))
    found, _ = resolver.resolve(qual, None)
    for d in found[:1]:
        entry = req.index.get(d.path)
        if entry is None:
            continue
        if d.kind in ("variable", "constant"):
            m = _INSTANCE.search(d.signature)
            cls = [c for c in entry.defs_named(m.group(1)) if c.kind in CLASS_LIKE] if m else []
            if not cls:  # an object literal's own methods (``export const provider = { f() {...} }``)
                return entry, [m for m in render.members(entry, d) if m.kind != "field"]
            d = cls[0]
        if d.kind in CLASS_LIKE:
            found = [m for m in render.members(entry, d) if m.kind != "field" and _private(m.name) < 2]
            return entry, sorted(found, key=lambda m: (_private(m.name), m.start_line))
    return None, []


def _private(name: str) -> int:
    """0 for a public name, 1 for ``_private``, 2 for ``__dunder__`` (never written ``obj.__x__()``):
    what code outside a module or class calls is mostly its public names."""
    if name.startswith("__") and name.endswith("__"):
        return 2
    return 1 if name.startswith(("_", "#")) else 0
