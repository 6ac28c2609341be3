"""Repository context for one completion request: providers raced, fitted to a budget, in a stable order.

API for the engine (everything else in this package is detail)::

    from sc2lsp.context.index import RepoIndex
    from sc2lsp.context.gather import gather_context
    index = RepoIndex()
    index.apply_change("pkg/util.py", text)        # didOpen / didChange / didSave / watcher
    index.remove("pkg/old.py")                      # deleted or renamed away
    index.open(path); index.close(path)             # didOpen / didClose (similar-chunk sources)
    blocks = gather_context(index, "pkg/main.py", text, offset, plan.context_tokens,
                            count=approx_tokens, window=(plan.prefix_start, offset + plan.suffix_end))
    context = [b.source_file() for b in blocks]     # -> infill_prompt(..., context=context)

``plan`` is the ``core.budget.BudgetPlan`` of the request; ``window`` is the part of ``text``
(character offsets) that the prompt already holds as prefix and suffix, so nothing inside it is
repeated (None: the whole file is in the prompt). Each ``ContextBlock`` names the provider that
chose it (``definitions``, ``outline``, ``edits``, ``similar``: see ``providers.py``). The files
of a workspace get into the index through ``sc2lsp.workspace.indexer.index_workspace`` and stay
current through ``sc2lsp.workspace.watch.WorkspaceWatcher``; ``sc2lsp.workspace.service.
WorkspaceContext`` wires both with the editor's documents for a server.

Budget: providers are served in priority order, each up to its share of the budget; a
definition enters as its signature (elided body or class outline) first, and is shown in full
when the provider's share still has room after every candidate got its signature.

Time: each provider runs in a worker thread against its own time budget; one that is late is
skipped (``ContextResult.skipped``), never waited for (the definitions provider's candidates
ranked by then are used: its most wanted come first), and goes on in the background for up to
``BACKGROUND_S`` so that what it computes is cached for the next gathering. A complete gathering
(``time_budget_ms`` of ``NO_TIME_LIMIT``: the server's warm-ups, ``sc2lsp context``) skips nothing.

Stability: the result is a pure function of the index state and the request (ties broken by
path and line; blocks in ``render_order``, files by path, snippets by line), so requests at the
same place produce the same prompt and the KV cache is reused. The engine should keep the blocks
while the user types on one line and refresh them on a line change or when idle.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Callable

from ..core.budget import approx_tokens
from . import render
from .index import FileEntry, RepoIndex, build_entry
from .languages import language_for, parser_for, spec, tags_query
from .providers import (CHARS_PER_TOKEN_MAX, PROVIDER_FUNCTIONS, PROVIDERS, REQUEST_BUDGET_MS, Candidate, ContextBlock,
                        ContextOptions, Late, Request, chunk_postings, prepare_definitions)
from .render import Snippet

log = logging.getLogger(__name__)

__all__ = ["ContextBlock", "ContextOptions", "ContextResult", "assemble", "complete_options", "gather_context",
           "make_request", "prepare"]

#: Twice the providers: a provider that was late finishes in the background (filling the caches the
#: next gathering uses) without holding up the next request's providers.
_EXECUTOR = ThreadPoolExecutor(max_workers=2 * len(PROVIDERS), thread_name_prefix="sc2lsp-context")
#: Tokens counted per snippet besides its text: its newline and, at most, an elision line.
ELISION_TOKENS = 4


def _cost(req: Request, s: Snippet) -> int:
    """A snippet's tokens in a block: its text, its newline and the elision line before it (none
    before a snippet that shows its own elision, ``render.marked``)."""
    return req.count(s.text) + (1 if render.marked(s) else ELISION_TOKENS)
#: How long a late provider may go on in the background before it is stopped.
BACKGROUND_S = 2.0
#: ``time_budget_ms`` of a complete gathering (a warm-up, ``sc2lsp context``): no provider is skipped.
NO_TIME_LIMIT = float("inf")


@dataclass(frozen=True)
class ContextResult:
    blocks: list[ContextBlock]
    timings_ms: dict[str, float]
    skipped: dict[str, str]  #: provider -> "late" or "error: ..."


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, max(0, min(offset, len(text))))


def make_request(index: RepoIndex, path: str, text: str, offset: int, *, count=approx_tokens,
                 window: tuple[int, int] | None = None, language_id: str | None = None,
                 options: ContextOptions | None = None) -> Request:
    """The current file's entry comes from the index when it holds this text; otherwise (not
    indexed yet, or not updated yet) it is parsed here and not stored."""
    options = options or ContextOptions()
    offset = max(0, min(offset, len(text)))
    entry = index.get(path)
    if entry is None or (entry.text != text and language_for(path, language_id, text) != entry.language):
        entry = build_entry(path, text, language_id)
    elif entry.text != text:
        # a stale entry keeps its symbols (imports and definitions change rarely while typing)
        # but the lines must be the request's, or line numbers and the window disagree
        entry = FileEntry(entry.path, entry.language, text, entry.symbols, entry.digest)
    sp = spec(entry.language)
    lines = (0, text.count("\n")) if window is None else (_line_of(text, window[0]), _line_of(text, window[1]))
    return Request(index, path, text, offset, entry, sp.family if sp else "text", _line_of(text, offset), lines,
                   options, count)


def _fresh(req: Request, path: str, snippets, taken) -> list[Snippet] | None:
    """The snippets not shown yet; None when the candidate's main (last) snippet is."""
    fresh = [s for s in snippets if not req.in_window(path, s.start, s.end)
             and not any(s.start <= b and s.end >= a for a, b in taken.get(path, ()))]
    if not fresh or snippets[-1] not in fresh:
        return None
    return fresh


def _upgrade(req: Request, mine: list[list], cap: int, used: int) -> int:
    """Longer forms where the share still has room: every pick's next form in rank order (the
    signatures get their docs before any body is shown in full), then the next. Returns the
    tokens used."""
    levels = max((len(p[1].tiers()) for p in mine), default=1)
    for level in range(1, levels):
        for pick in mine:
            c, cur = pick[1], pick[2]
            tiers = c.tiers()
            if level >= len(tiers):
                continue
            ranges = {(s.start, s.end) for s in cur}
            nxt = [s for s in tiers[level] if (s.start, s.end) in ranges]
            if len(nxt) != len(cur) or nxt == cur:
                continue
            cur_tokens = sum(_cost(req, s) for s in cur)
            if sum(len(s.text) for s in nxt) > (cap - used + cur_tokens) * CHARS_PER_TOKEN_MAX:
                continue  # far too long to fit: not worth tokenizing
            extra = sum(_cost(req, s) for s in nxt) - cur_tokens
            if used + extra <= cap:
                pick[2] = nxt
                used += extra
    return used


def _allocate(req: Request, results: dict[str, list[Candidate]], budget: int) -> list[ContextBlock]:
    o = req.options
    taken: dict[str, list[tuple[int, int]]] = {}  # path -> line ranges already shown
    picks: list[tuple[str, Candidate, list[Snippet]]] = []
    headers: set[tuple[str, str]] = set()
    remaining = budget
    for name in o.priority:
        cap = min(remaining, int(budget * o.shares.get(name, 0.0)))
        used = 0
        mine: list[list] = []
        for c in results.get(name, ()):  # first pass: the shortest form of every candidate that fits
            fresh = _fresh(req, c.path, c.tiers()[0], taken)
            if fresh is None:
                continue
            # + the newline and the elision line (``# ...``) a block puts between snippets that do not touch
            cost = sum(_cost(req, s) for s in fresh)
            if (name, c.path) not in headers:
                cost += req.count(f"{c.path}\n") + 1
            if used + cost > cap:
                continue
            used += cost
            headers.add((name, c.path))
            taken.setdefault(c.path, []).extend((s.start, s.end) for s in fresh)
            mine.append([name, c, fresh])
        used = _upgrade(req, mine, cap, used)
        remaining -= used
        picks += [tuple(p) for p in mine]
    chosen: dict[tuple[str, str], list[tuple[Snippet, str]]] = {}
    for name, c, snippets in picks:
        chosen.setdefault((name, c.path), []).extend((s, c.reason) for s in snippets)
    blocks = []
    for name in o.render_order:
        for (prov, path), items in sorted(chosen.items()):
            if prov != name:
                continue
            entry = req.entry if path == req.path else req.index.get(path)
            snippets = [s for s, _ in items]
            code = render.join(entry, snippets)
            reasons = list(dict.fromkeys(r for _, r in items))
            blocks.append(ContextBlock(path, code, prov, "; ".join(reasons), req.count(code),
                                       tuple(sorted((s.start, s.end) for s in snippets))))
    return blocks


def assemble(index: RepoIndex, path: str, text: str, offset: int, budget: int, *, count=approx_tokens,
             window: tuple[int, int] | None = None, language_id: str | None = None,
             options: ContextOptions | None = None,
             providers: dict[str, Callable[[Request], list[Candidate]]] | None = None) -> ContextResult:
    """Run the providers against their time budgets and fit their candidates into ``budget`` tokens."""
    if budget <= 0:
        return ContextResult([], {}, {})
    if len(text) > index.max_bytes:
        log.debug("no context for %s: %d characters, more than the index takes", path, len(text))
        return ContextResult([], {}, {"all": "file too large"})
    req = make_request(index, path, text, offset, count=count, window=window, language_id=language_id,
                       options=options)
    funcs = providers or PROVIDER_FUNCTIONS
    o = req.options
    start = time.perf_counter()
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    results: dict[str, list[Candidate]] = {}

    def run(name: str, r: Request) -> list[Candidate]:
        t0 = time.perf_counter()
        try:
            return funcs[name](r)
        finally:
            timings[name] = round((time.perf_counter() - t0) * 1000, 3)

    futures, waits, reqs = {}, {}, {}
    for name in o.priority:
        if name not in funcs:
            continue
        waits[name] = start + o.time_budget_ms.get(name, REQUEST_BUDGET_MS) / 1000
        # a provider not done in its time is skipped here but goes on in the background for a while:
        # the caches it fills (token counts, name tables, chunk sets) make the next gathering fast
        r = reqs[name] = Request(**{**req.__dict__, "budget": budget, "deadline": waits[name] + BACKGROUND_S,
                                    "cancelled": threading.Event()})
        futures[name] = _EXECUTOR.submit(run, name, r)
    for name, fut in futures.items():
        try:
            results[name] = fut.result(timeout=None if waits[name] == NO_TIME_LIMIT
                                       else max(0.0, waits[name] - time.perf_counter()))
        except (FutureTimeout, Late):
            skipped[name] = _late(reqs[name], results, name)
            log.debug("context provider %s %s: over its %s ms", name, skipped[name], o.time_budget_ms.get(name))
        except Exception as e:  # a provider bug costs its blocks, never the completion
            skipped[name] = f"error: {e!r}"
            log.debug("context provider %s failed", name, exc_info=True)
    blocks = _allocate(req, results, budget)
    index.touch(path)
    return ContextResult(blocks, dict(timings), skipped)


def _late(r: Request, results: dict[str, list[Candidate]], name: str) -> str:
    """A late provider's candidates ranked so far (the most wanted first) go into ``results``
    when it gives them (``Request.snapshot``): "late, partial"; else "late"."""
    if r.snapshot is None:
        return "late"
    results[name] = list(r.snapshot())
    return "late, partial"


def gather_context(index: RepoIndex, path: str, text: str, offset: int, budget: int, *, count=approx_tokens,
                   window: tuple[int, int] | None = None, language_id: str | None = None,
                   options: ContextOptions | None = None) -> list[ContextBlock]:
    """The context blocks for a completion at ``offset`` of ``text`` (the document ``path``)."""
    return assemble(index, path, text, offset, budget, count=count, window=window, language_id=language_id,
                    options=options).blocks


def complete_options(options: ContextOptions | None = None) -> ContextOptions:
    """``options`` without time budgets: every provider runs to the end (warm-ups, ``sc2lsp context``)."""
    from dataclasses import replace

    options = options or ContextOptions()
    return replace(options, time_budget_ms={p: NO_TIME_LIMIT for p in PROVIDERS})


def prepare(index: RepoIndex, path: str, *, count=approx_tokens, options: ContextOptions | None = None) -> dict:
    """Make the first gathering for the indexed file ``path`` cheap (a server calls this when a
    document is opened, in the background): the language's query compiled and a parser for this
    thread, the file's imports resolved, the name tables of the files they point at built, what
    its imported names and module members name rendered and counted (``count`` should be the
    request's memoising counter), and the file's similar-chunk sets and their postings computed."""
    entry = index.get(path)
    if entry is None:
        return {"definitions": 0}
    t0 = time.perf_counter()
    if entry.language:
        tags_query(entry.language)
        parser_for(entry.language)
    options = complete_options(options)
    req = make_request(index, path, entry.text, 0, count=count, options=options)
    req.deadline = NO_TIME_LIMIT
    n = prepare_definitions(req)
    chunk_postings(entry, options.chunk_lines, options.chunk_stride)
    # one whole gathering at the top of the file: starts the providers' threads, fills what is left
    assemble(index, path, entry.text, 0, 512, count=count, options=options)
    return {"definitions": n, "ms": round((time.perf_counter() - t0) * 1000, 3)}
