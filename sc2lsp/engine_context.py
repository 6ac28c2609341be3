"""The engine's repository context and warm-up: what each document's prompts hold of the
repository, and the background warm-up that gathers it completely and commits it.

What a document's prompt holds is *committed* per document and changes only where the prompt is
evaluated anew anyway: at a warm-up (the user paused; the new context is gathered completely on a
background thread and committed once the warm-up has evaluated it, so the next keystroke finds it
cached), on a request whose kept suffix differs from the committed one (the cursor went elsewhere),
and on the first request in a document. A keystroke that only extends the prompt keeps the
committed context, so context that arrives later never makes a keystroke evaluate the prompt again.

``DocumentContexts`` is an object ``sc2lsp.engine.Engine`` owns (``engine.context``). It is given
what it uses: the ``context_fn``, the model worker, the settings (``configure``), the engine's lock
(shared, so that a warm-up and a completion see one order of events) and the engine's callbacks
(the token counter, the budget plan, the prompt, whether a completion is running, the parse of a
prompt's text). The engine calls ``for_request`` when it plans a completion, ``submitted`` when it
submits one, ``warm``/``take_pending``/``wait_idle``/``preparing`` for warm-ups and ``committed``
for a request's timings; the saved contexts of earlier sessions are ``saved``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable

from .backends.worker import ModelWorker
from .config import Settings
from .core.budget import BudgetPlan
from .core.prompt import SourceFile
from .saved_contexts import SavedContext, saved_contexts_for
from .suggestions import ContextFn, Cursor

log = logging.getLogger("sc2lsp.engine")  # the engine's log, as before the split

#: (cursor, prefix, suffix) -> the budget plan a request there would have (not remembered)
PreviewFn = Callable[[Cursor, str, str], BudgetPlan]
#: (cursor, prefix, suffix, context files) -> (kept prefix, kept suffix, max new tokens, prompt, plan)
PromptFn = Callable[..., tuple[str, str, int, str, BudgetPlan]]


@dataclass(frozen=True)
class Committed:
    """The repository context the prompts of one document hold, and where it was committed."""

    files: tuple[SourceFile, ...]
    budget: int  #: the context budget it was gathered for
    suffix: str  #: the kept suffix of the prompt it was committed with
    ms: float  #: time to gather it
    complete: bool  #: gathered without time budgets (a warm-up)


class DocumentContexts:
    """The committed context of each document and the warm-ups that renew it."""

    def __init__(
        self,
        settings: Settings,
        context_fn: ContextFn | None,
        worker: ModelWorker,
        *,
        lock: threading.RLock,
        counter: Callable[[], Callable[[str], int]],
        preview: PreviewFn,
        prompt: PromptFn,
        busy: Callable[[], bool],
        parse: Callable[[str, str, str], None],
    ):
        """``lock``: the engine's, held while it submits completions; ``counter()``: the token
        counter of now; ``busy()``: a completion is being generated (asked under ``lock``);
        ``parse(uri, language, text)``: the syntax checker's first parse of a warmed-up prompt."""
        self.settings = settings
        self.saved = saved_contexts_for(settings.state_disk_mb)  # beside the KV states on disk
        self._context_fn = context_fn
        self._worker = worker
        self._lock = lock
        self._counter = counter
        self._preview = preview
        self._prompt = prompt
        self._busy = busy
        self._parse = parse
        self._contexts: dict[str, Committed] = {}  # uri -> the context its prompts hold
        self._placed: set[str] = set()  #: documents whose first warm-up was placed (where an earlier session left them)
        self._submits = 0  #: completion jobs submitted so far (a warm-up commits only if none came after it)
        self._warm_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc2lsp-warm")
        self._closed = False  #: ``close`` was called: no more warm-ups (a model may finish loading after it)
        self._warm_seq = 0  #: the newest warm-up request (an older one still gathering is dropped)
        self._warm_on_load: Cursor | None = None  #: a warm-up asked for while the model was loading
        self._warm_preparing = 0  #: warm-ups whose context is still being gathered
        #: (placed cursor, when last used) of the document an earlier session used last among
        #: those opened since the start, while no completion was asked for: after another
        #: document's warm-up its prompt is brought back into the live cache (``_resume_job``)
        self._resume: tuple[Cursor, float] | None = None

    def configure(self, settings: Settings) -> None:
        old, self.settings = self.settings, settings
        if settings.state_disk_mb != old.state_disk_mb:
            self.saved.close()
            self.saved = saved_contexts_for(settings.state_disk_mb)

    def close(self) -> None:
        self._closed = True
        self._warm_pool.shutdown(wait=False, cancel_futures=True)
        self.saved.close()

    def forget(self) -> None:
        """Drop every document's committed context (the workspace folders changed: a removed
        folder's files must not stay in the prompts); the next request gathers afresh."""
        with self._lock:
            self._contexts.clear()

    def committed(self, uri: str) -> Committed | None:
        """The context the prompts of ``uri`` hold now."""
        return self._contexts.get(uri)

    def submitted(self) -> None:
        """A completion job was submitted (under the engine's lock): warm-ups before it are void,
        and the live cache follows the requests from now on (no more ``_resume``)."""
        self._submits += 1
        self._resume = None

    @property
    def preparing(self) -> bool:
        """Whether a warm-up's context is still being gathered."""
        return bool(self._warm_preparing)

    # ------------------------------------------------------------------ committed context

    def _wants_context(self, plan: BudgetPlan) -> bool:
        return self._context_fn is not None and self.settings.repo_context and plan.context_tokens > 0

    def for_request(self, cur: Cursor, plan: BudgetPlan, cut_suffix: str) -> tuple[SourceFile, ...]:
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
        saved = self.saved.find(cur.uri, cur.text, cur.path, cut_suffix)
        if saved is not None and saved.valid == len(saved.files):
            files, budget, complete = saved.files, saved.budget, saved.complete
            self.saved.used += 1
        else:
            try:
                found = self._context_fn(cur, plan, self._counter())
            except Exception:  # context is a bonus: never fail a completion over it
                log.exception("repository context failed")
                found = ()
            # None (still indexing): none for now, the next warm-up brings it
            files, budget, complete = self._kept(saved, found or (), plan.context_tokens), plan.context_tokens, False
        entry = Committed(files, budget, cut_suffix, (time.perf_counter() - t0) * 1000, complete)
        self._contexts[cur.uri] = entry
        self.saved.record(cur.uri, cur.text, cur.offset, cur.path, cut_suffix, files, budget, complete)
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
        count = self._counter()
        total, keep = 0, 0
        for f in files:
            total += count(f"{f.path}\n{f.code}") + 2
            if total > budget:
                break
            keep += 1
        return files[:keep]

    # ------------------------------------------------------------------ warm-up

    def warm(self, cur: Cursor, model_state: str) -> bool:
        """Evaluate the prompt for ``cur`` in the background (on didOpen, or when typing pauses);
        ``model_state``: the engine's (a warm-up asked for while loading waits: ``take_pending``).

        The repository context is gathered afresh and completely (no provider time budgets; the
        index is waited for) on a background thread, the prompt with it is evaluated by the model
        worker, and only once that is done does it become the document's committed context. A
        keystroke that comes first wins: the warm-up is dropped and tried at the next pause."""
        if not self.settings.warm_up or not self.settings.enabled_for(cur.language):
            return False
        if not 0 <= cur.offset <= len(cur.text):
            return False
        last_used = None
        if cur.uri not in self._placed:
            # didOpen after a start (offset 0: no cursor known yet): where the user was when the
            # document was last used, if its text is the same (that prompt's state and context are saved)
            self._placed.add(cur.uri)
            placed = self.saved.placed(cur.uri, cur.text) if cur.offset == 0 else None
            if placed is not None:
                cur, last_used = replace(cur, offset=placed[0]), placed[1]
        with self._lock:  # also while the model loads: only the newest warm-up waits for it
            if last_used is not None and (self._resume is None or last_used >= self._resume[1]):
                self._resume = (cur, last_used)
            elif self._resume is not None and self._resume[0].uri == cur.uri:  # the cursor moved there
                self._resume = (cur, self._resume[1])
        if model_state != "ready":
            if model_state == "loading":
                self._warm_on_load = cur
            return False
        with self._lock:
            if self._closed:  # the model finished loading after the server closed
                return False
            if self._busy():
                return False  # a completion is running; it warms the cache itself
            self._warm_seq += 1
            seq, submits = self._warm_seq, self._submits
            self._warm_preparing += 1
        self._warm_pool.submit(self._warm_job, cur, seq, submits)
        return True

    def take_pending(self) -> Cursor | None:
        """The warm-up asked for while the model was loading (once)."""
        pending, self._warm_on_load = self._warm_on_load, None
        return pending

    def _warm_job(self, cur: Cursor, seq: int, submits: int, same: Committed | None = None) -> None:
        """On the warm-up thread: gather the context completely, then hand the prompt to the worker
        (``same``: with this committed context instead, the prompt evaluated before)."""
        try:
            prefix, suffix = cur.text[: cur.offset], cur.text[cur.offset:]
            with self._lock:
                if seq != self._warm_seq or submits != self._submits:
                    return  # a newer warm-up, or the user typed meanwhile
                plan = self._preview(cur, prefix, suffix)
            if same is not None and same.suffix != plan.cut(prefix, suffix)[1]:
                same = None  # committed elsewhere in the document
            files, ms = (same.files, same.ms) if same is not None else self._complete_context(cur, plan)
            with self._lock:
                if seq != self._warm_seq or submits != self._submits:
                    return
                cut_prefix, cut_suffix, _, prompt, plan = self._prompt(cur, prefix, suffix, context=files)
                job = self._worker.warm(prompt)
            entry = Committed(files, plan.context_tokens, cut_suffix, ms, True)

            def commit(fut: Future) -> None:
                if fut.cancelled() or fut.exception() is not None or fut.result().stop_reason != "warm":
                    return
                with self._lock:
                    if submits == self._submits:  # the KV cache holds this prompt: it is the document's now
                        self._contexts[cur.uri] = entry
                        self.saved.record(cur.uri, cur.text, cur.offset, cur.path, cut_suffix, files, entry.budget, True)
                        if self._resume is not None and self._resume[0].uri != cur.uri:
                            self._schedule_resume(submits)

            job.future.add_done_callback(commit)
            self._parse(cur.uri, cur.language, cut_prefix + cut_suffix)  # grammar and first parse here, not on a request
        except Exception:  # a warm-up is a bonus: never let it take the thread down
            log.exception("warm-up failed")
        finally:
            with self._lock:
                self._warm_preparing -= 1

    def _schedule_resume(self, submits: int) -> None:
        """(Under the lock) queue ``_resume_job`` behind the warm-ups asked for so far."""
        self._warm_preparing += 1
        try:
            self._warm_pool.submit(self._resume_job, self._warm_seq, submits)
        except RuntimeError:  # shut down
            self._warm_preparing -= 1

    def _resume_job(self, seq: int, submits: int) -> None:
        """On the warm-up thread, after another document's warm-up (no request since the start):
        warm the document an earlier session used last up again at its place, which restores its
        saved state (~2-5 ms for sc2-tiny) into the live cache, so the first request there does not
        pay for it; skipped when a newer warm-up or a request came meanwhile (the user chose)."""
        try:
            with self._lock:
                resume, go = self._resume, seq == self._warm_seq and submits == self._submits
                if resume is not None and go:
                    self._warm_seq += 1
                    seq = self._warm_seq
                    self._warm_preparing += 1  # taken back by _warm_job
            if resume is not None and go:
                # the context its own warm-up committed this session (its prompt's state is saved)
                self._warm_job(resume[0], seq, submits, self._contexts.get(resume[0].uri))
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
        saved = self.saved.find(cur.uri, cur.text, cur.path, cut_suffix)
        if saved is not None and saved.valid == len(saved.files):
            self.saved.used += 1
            files = saved.files if plan.context_tokens >= saved.budget else self._trim(saved.files, plan.context_tokens)
            return files, 0.0
        try:
            found = self._context_fn(cur, plan, self._counter(), complete=True)
        except Exception:
            log.exception("repository context failed")
            found = None
        if found is None:
            committed = self._contexts.get(cur.uri)
            return (self._fit(committed, plan.context_tokens) if committed is not None else ()), 0.0
        return self._kept(saved, found, plan.context_tokens), (time.perf_counter() - t0) * 1000

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no warm-up is being prepared and the model worker has nothing to do."""
        end = time.monotonic() + timeout
        while True:
            self._warm_pool.submit(lambda: None).result(timeout=timeout)  # the warm-ups queued before
            if not self._worker.wait_idle(max(0.0, end - time.monotonic())):
                return False
            if not self._warm_preparing:  # a warm-up that finished may have queued a resume
                return True
            if time.monotonic() > end:
                return False
