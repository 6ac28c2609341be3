"""The providers that show lines of the files as they are: ``outline`` (when the window cuts the
current file, its enclosing class or the module as signatures of what lies outside the window,
nearest first), ``similar`` (windows of open and recently used files most similar, Jaccard over
identifier sets, to the lines before the cursor) and ``edits`` (recently edited regions).
"""

from __future__ import annotations

from collections import Counter
from itertools import chain
from typing import Callable

from . import render
from .index import FileEntry
from .request import Candidate, Request
from .symbols import CLASS_LIKE, IDENTIFIER

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


class ChunkPostings:
    """A file's windows (``_chunks``) and, per identifier, the windows holding it: the similarity
    of every window to a query is then a count over the query's identifiers' windows (in C,
    ``Counter.update``) instead of one set intersection per window and file (16 recent files of
    300 windows each on every request)."""

    __slots__ = ("chunks", "postings")

    def __init__(self, chunks: list[tuple[int, int, frozenset[str]]]):
        self.chunks = chunks
        postings: dict[str, list[int]] = {}
        for i, (_, _, toks) in enumerate(chunks):
            for t in toks:
                postings.setdefault(t, []).append(i)
        self.postings = postings

    def shared(self, query: frozenset[str]) -> Counter:
        """{window index: identifiers it shares with ``query``} for the windows sharing any."""
        postings = self.postings
        return Counter(chain.from_iterable(map(postings.__getitem__, postings.keys() & query)))


#: Counts the ``ChunkPostings`` built (tests check they are built once per file, not per request).
postings_built = 0


def chunk_postings(entry: FileEntry, size: int, stride: int,
                   check: Callable[[], None] | None = None) -> ChunkPostings:
    """The ``ChunkPostings`` of a whole file, built once per entry (``prepare`` builds them for a
    document it opens; a recently used file got them on the request that used it)."""
    global postings_built
    kept = entry.__dict__.setdefault("_chunk_postings", {})
    found = kept.get((size, stride))
    if found is None:
        found = kept[(size, stride)] = ChunkPostings(_chunks(entry, size, stride, check=check))
        postings_built += 1
    return found


def _scores(req: Request, p: str, entry: FileEntry, query: frozenset[str], scored: list) -> None:
    """Append ``(-score, path, start, end)`` for the windows of ``entry`` similar enough to ``query``."""
    o = req.options
    if p == req.path:  # only the ~100 windows near the cursor (and a text being typed is new)
        for start, end, toks in _chunks(entry, o.chunk_lines, o.chunk_stride, req.cursor_line, check=req.check):
            if req.in_window(p, start, end):
                continue
            inter = len(query & toks)
            if inter:
                score = inter / (len(query) + len(toks) - inter)
                if score >= o.min_similarity:
                    scored.append((-score, p, start, end))
        return
    posted = chunk_postings(entry, o.chunk_lines, o.chunk_stride, req.check)  # another file: every window
    chunks, nq = posted.chunks, len(query)
    least = o.min_similarity * nq * (1 - 1e-9)  # a window sharing fewer is under min_similarity
    for i, inter in posted.shared(query).items():
        if inter < least:
            continue
        start, end, toks = chunks[i]
        score = inter / (nq + len(toks) - inter)
        if score >= o.min_similarity:
            scored.append((-score, p, start, end))


def _lines_before(text: str, offset: int, n: int) -> str:
    """``"\n".join(text[:offset].split("\n")[-n:])`` without copying and splitting the whole
    prefix (a 300 KB file: a millisecond per request)."""
    if n <= 0:
        return text[:offset]
    start = offset
    for _ in range(n):
        start = text.rfind("\n", 0, start)
        if start < 0:
            return text[:offset]
    return text[start + 1:offset]


def similar_provider(req: Request) -> list[Candidate]:
    o = req.options
    query = frozenset(IDENTIFIER.findall(_lines_before(req.text, req.offset, o.query_lines)))
    if not query:
        return []
    scored: list[tuple[float, str, int, int]] = []
    paths = (req.path,) + tuple(p for p in req.index.recent_files() if p != req.path)
    for p in paths:
        entry = req.entry if p == req.path else req.index.get(p)
        if entry is not None:
            req.check()
            _scores(req, p, entry, query, scored)
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
