"""The engine's repository context and warm-up: what each document's prompts hold of the
repository, and the background warm-up that gathers it completely and commits it.

What a document's prompt holds is *committed* per document and changes only where the prompt is
evaluated anew anyway: at a warm-up (the user paused; the new context is gathered completely on a
background thread and committed once the warm-up has evaluated it, so the next keystroke finds it
cached), on a request whose kept suffix differs from the committed one (the cursor went elsewhere),
and on the first request in a document. A keystroke that only extends the prompt keeps the
committed context, so context that arrives later never makes a keystroke evaluate the prompt again.

``WarmUpContext`` is a mixin of ``sc2lsp.engine.Engine`` (split out of engine.py for size); it uses
the engine state listed on the class, all set up by ``Engine.__init__``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable

from .backends.worker import ModelWorker
from .config import Settings
from .core.budget import BudgetPlan, plan_budget
from .core.prompt import SourceFile
from .saved_contexts import SavedContext, SavedContexts
from .suggestions import ContextFn, Cursor

log = logging.getLogger("sc2lsp.engine")  # the engine's log, as before the split


@dataclass(frozen=True)
class Committed:
    """The repository context the prompts of one document hold, and where it was committed."""

    files: tuple[SourceFile, ...]
    budget: int  #: the context budget it was gathered for
    suffix: str  #: the kept suffix of the prompt it was committed with
    ms: float  #: time to gather it
    complete: bool  #: gathered without time budgets (a warm-up)


class WarmUpContext:
    """The committed context of each document and the warm-up (mixed into ``Engine``)."""

    # engine state this part uses (set by Engine.__init__)
    settings: Settings
    worker: ModelWorker
    model_state: str
    totals: dict[str, Any]
    _lock: threading.RLock
    _last: Any  #: the engine's newest request (``engine._Request``) or None
    _plans: dict[str, BudgetPlan]
    _counter: Callable[[str], int]
    _context_fn: ContextFn | None
    _contexts: dict[str, Committed]  #: uri -> the context its prompts hold
    _saved: SavedContexts  #: committed contexts of earlier sessions (and this one's, for the next)
    _placed: set[str]  #: documents whose first warm-up was placed (where an earlier session left them)
    _submits: int
    _warm_pool: ThreadPoolExecutor
    _parse_pool: ThreadPoolExecutor  #: parses a request's text while the model generates
    _checkers: dict  #: (uri, language) -> its syntax checker, least recently used first
    _warm_seq: int
    _warm_on_load: Cursor | None
    _warm_preparing: int
    # and Engine's _plan(cur, prefix, suffix, context=...) and _sizes()

    # ------------------------------------------------------------------ committed context

    def _wants_context(self, plan: BudgetPlan) -> bool:
        return self._context_fn is not None and self.settings.repo_context and plan.context_tokens > 0

    def _context(self, cur: Cursor, plan: BudgetPlan, cut_suffix: str) -> tuple[SourceFile, ...]:
        """The context of a completion request: the committed one while the prompt only grows (the
        same kept suffix), else the one an earlier session committed at this place while its files
        are unchanged (its KV state is on disk), else gathered now (within the providers' time
        budgets); committed either way. Context that was not ready, or a provider that was late,
        comes in at the next warm-up."""
        if not self._wants_context(plan):
            return ()
        committed = self._contexts.get(cur.uri)
        if committed is not None and committed.suffix == cut_suffix:
            return self._fit(committed, plan.context_tokens)
        t0 = time.perf_counter()
        saved = self._saved.find(cur.uri, cur.text, cur.path, cut_suffix)
        if saved is not None and saved.valid == len(saved.files):
            files, budget, complete = saved.files, saved.budget, saved.complete
            self._saved.used += 1
        else:
            try:
                found = self._context_fn(cur, plan, self._counter)
            except Exception:  # context is a bonus: never fail a completion over it
                log.exception("repository context failed")
                found = ()
            # None (still indexing): none for now, the next warm-up brings it
            files, budget, complete = self._kept(saved, found or (), plan.context_tokens), plan.context_tokens, False
        entry = Committed(files, budget, cut_suffix, (time.perf_counter() - t0) * 1000, complete)
        self._contexts[cur.uri] = entry
        self._saved.record(cur.uri, cur.text, cur.offset, cur.path, cut_suffix, files, budget, complete)
        return self._fit(entry, plan.context_tokens)

    def _kept(self, saved: SavedContext | None, found, budget: int) -> tuple[SourceFile, ...]:
        """``found`` after the unchanged leading files of an earlier session's context at this
        place (so that prompt prefix is restored), within ``budget``; a changed file's block is
        never kept: the new gathering has it as it is now."""
        if saved is None or not saved.valid:
            return tuple(found)
        kept = list(saved.files[: saved.valid])
        kept += [f for f in found if f not in kept]
        return self._trim(tuple(kept), budget)

    def _fit(self, committed: Committed, budget: int) -> tuple[SourceFile, ...]:
        """The committed files, without the trailing ones that no longer fit when the budget shrank
        below the one they were gathered for (a short file's prefix grew into the context's share):
        dropping at the end keeps the front of the prompt cached."""
        if budget >= committed.budget:
            return committed.files
        return self._trim(committed.files, budget)

    def _trim(self, files: tuple[SourceFile, ...], budget: int) -> tuple[SourceFile, ...]:
        """The leading ``files`` that fit ``budget`` tokens."""
        total, keep = 0, 0
        for f in files:
            total += self._counter(f"{f.path}\n{f.code}") + 2
            if total > budget:
                break
            keep += 1
        return files[:keep]

    # ------------------------------------------------------------------ warm-up

    def warm(self, cur: Cursor) -> bool:
        """Evaluate the prompt for ``cur`` in the background (on didOpen, or when typing pauses).

        The repository context is gathered afresh and completely (no provider time budgets; the
        index is waited for) on a background thread, the prompt with it is evaluated by the model
        worker, and only once that is done does it become the document's committed context. A
        keystroke that comes first wins: the warm-up is dropped and tried at the next pause."""
        if not self.settings.warm_up or not self.settings.enabled_for(cur.language):
            return False
        if not 0 <= cur.offset <= len(cur.text):
            return False
        if cur.uri not in self._placed:
            # didOpen after a start (offset 0: no cursor known yet): where the user was when the
            # document was last used, if its text is the same (that prompt's state and context are saved)
            self._placed.add(cur.uri)
            offset = self._saved.place(cur.uri, cur.text) if cur.offset == 0 else None
            if offset is not None:
                cur = replace(cur, offset=offset)
        if self.model_state != "ready":
            if self.model_state == "loading":
                self._warm_on_load = cur
            return False
        with self._lock:
            last = self._last
            if last is not None and not last.done.done():
                return False  # a completion is running; it warms the cache itself
            self._warm_seq += 1
            seq, submits = self._warm_seq, self._submits
            self._warm_preparing += 1
        self.totals["warmups"] += 1
        self._warm_pool.submit(self._warm_job, cur, seq, submits)
        return True

    def _warm_job(self, cur: Cursor, seq: int, submits: int) -> None:
        """On the warm-up thread: gather the context completely, then hand the prompt to the worker."""
        try:
            prefix, suffix = cur.text[: cur.offset], cur.text[cur.offset:]
            with self._lock:
                if seq != self._warm_seq or submits != self._submits:
                    return  # a newer warm-up, or the user typed meanwhile
                plan = plan_budget(prefix, suffix, self._sizes()[1], self._counter,
                                   previous=self._plans.get(cur.uri))
            files, ms = self._complete_context(cur, plan)
            with self._lock:
                if seq != self._warm_seq or submits != self._submits:
                    return
                cut_prefix, cut_suffix, _, prompt, plan = self._plan(cur, prefix, suffix, context=files)
                job = self.worker.warm(prompt)
            entry = Committed(files, plan.context_tokens, cut_suffix, ms, True)

            def commit(fut: Future) -> None:
                if fut.cancelled() or fut.exception() is not None or fut.result().stop_reason != "warm":
                    return
                with self._lock:
                    if submits == self._submits:  # the KV cache holds this prompt: it is the document's now
                        self._contexts[cur.uri] = entry
                        self._saved.record(cur.uri, cur.text, cur.offset, cur.path, cut_suffix, files, entry.budget, True)

            job.future.add_done_callback(commit)
            self._parse(cur.uri, cur.language, cut_prefix + cut_suffix)  # grammar and first parse here, not on a request
        except Exception:  # a warm-up is a bonus: never let it take the thread down
            log.exception("warm-up failed")
        finally:
            with self._lock:
                self._warm_preparing -= 1

    def _complete_context(self, cur: Cursor, plan: BudgetPlan) -> tuple[tuple[SourceFile, ...], float]:
        """(files, ms): the context gathered without time budgets; the one an earlier session
        committed at this place while its files are unchanged (used once: the warm-up after a
        restart restores that prompt's state instead of evaluating another); the committed one
        when the workspace has none yet (still indexing), so the warm-up does not take it away."""
        if not self._wants_context(plan):
            return (), 0.0
        t0 = time.perf_counter()
        cut_suffix = plan.cut(cur.text[: cur.offset], cur.text[cur.offset:])[1]
        saved = self._saved.find(cur.uri, cur.text, cur.path, cut_suffix)
        if saved is not None and saved.valid == len(saved.files):
            self._saved.used += 1
            files = saved.files if plan.context_tokens >= saved.budget else self._trim(saved.files, plan.context_tokens)
            return files, 0.0
        try:
            found = self._context_fn(cur, plan, self._counter, complete=True)
        except Exception:
            log.exception("repository context failed")
            found = None
        if found is None:
            committed = self._contexts.get(cur.uri)
            return (self._fit(committed, plan.context_tokens) if committed is not None else ()), 0.0
        return self._kept(saved, found, plan.context_tokens), (time.perf_counter() - t0) * 1000

    def _checker(self, uri: str, language: str):
        """The syntax checker post-processing uses for a document: one per recently used document
        (each keeps its own last tree, so a check after another document's parses incrementally),
        or None (off, or no grammar)."""
        if not self.settings.syntax_check or not language:
            return None
        from .context.syntax import SyntaxChecker, syntax_checker

        with self._lock:
            key = (uri, language)
            checker = self._checkers.get(key)
            if checker is None:
                shared = syntax_checker(language)
                if shared is None:
                    return None
                checker = self._checkers[key] = SyntaxChecker(shared.language)
                while len(self._checkers) > 8:
                    self._checkers.pop(next(iter(self._checkers)))
            else:
                self._checkers[key] = self._checkers.pop(key)  # most recently used last
            return checker

    def _parse(self, uri: str, language: str, text: str) -> None:
        """Parse ``text`` with the document's checker, so that post-processing's checks of the
        same text with a suggestion inserted parse incrementally (a whole parse of a document's
        window: ~10 ms for sc2-tiny's ~1,000-token prompts, more than generating)."""
        checker = self._checker(uri, language)
        if checker is not None:
            checker(text)

    def _preparse(self, uri: str, language: str, text: str) -> None:
        """``_parse`` on a helper thread while the model works on the request (llama.cpp releases
        the GIL): a request whose text the checker has not seen does not parse it afterwards."""
        if self.settings.syntax_check and language:
            try:
                self._parse_pool.submit(self._parse, uri, language, text)
            except RuntimeError:  # closed
                pass

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no warm-up is being prepared and the model worker has nothing to do."""
        end = time.monotonic() + timeout
        self._warm_pool.submit(lambda: None).result(timeout=timeout)  # the warm-ups queued before
        return self.worker.wait_idle(max(0.0, end - time.monotonic()))

