"""The completion engine: cursor -> budgeted FIM prompt -> model worker -> post-processing.

No LSP types: the LSP layer (``sc2lsp.lsp``) turns requests into a ``Cursor`` (document text and a
code-point offset) and ``Suggestion`` back into protocol items. Everything slow runs on the model
worker thread; ``complete`` returns at once with a ``Ticket`` whose future resolves later.

What makes a keystroke cheap, in the order the engine tries it:

1. **Typing along.** When the user types exactly what the last suggestion shows (same document,
   same text after the cursor, the new prefix extends the old one), the rest of that suggestion is
   the answer; no model call. If that suggestion is still being generated and agrees with what
   was typed so far, the new request waits for the same generation instead of cancelling it.
2. **The same request twice** (an editor asking for inline and classic completion at once)
   shares one generation.
3. Otherwise a new model job, which supersedes all older ones (the newest request wins). The
   prompt is cut by ``core.budget`` at grid lines so one keystroke only appends to the prompt and
   the backend evaluates the few new tokens after the cached prefix.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .backends.base import Backend, Generation
from .backends.factory import load_backend as default_backend
from .backends.worker import Job, ModelWorker, resolve
from .config import Settings
from .core.budget import BudgetPlan, approx_tokens, memo_counter, plan_budget, prompt_budget
from .core.postprocess import PostprocessOptions, advance_suggestion, mid_line, postprocess, settled
from .core.prompt import FimMode, SourceFile, infill_prompt
from .core.tokens import STOP_TOKENS
from .engine_context import DocumentContexts
from .engine_syntax import SyntaxCheckers
from .suggestions import ContextFn, Cursor, Suggestion, Ticket, latency_summary  # noqa: F401  (the engine's API)

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    """A model generation and the cursor it was made for."""

    cursor: Cursor
    prefix: str  #: full document text before the cursor
    suffix: str  #: full document text after the cursor
    cut_prefix: str  #: what the prompt holds of them
    cut_suffix: str
    job: Job
    done: Future = field(default_factory=Future)  #: -> Suggestion for this request's cursor
    waiters: int = 0
    plan_ms: float = 0.0  #: planning the prompt (budget, context, FIM string) before the job was submitted

    def release(self) -> None:
        self.waiters -= 1
        if self.waiters <= 0:
            self.job.cancel()


class Engine:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        notify: Callable[[str, str], None] | None = None,
        backend_factory: Callable[[Settings], Backend] | None = None,
        context_fn: ContextFn | None = None,
    ):
        """``notify(level, message)`` reports model problems (level: error, warning, info).

        ``context_fn`` supplies repository context; what a document's prompts hold of it is
        committed per document and renewed at warm-ups (``self.context``, ``sc2lsp.engine_context``);
        post-processing's syntax checkers are ``self.syntax`` (``sc2lsp.engine_syntax``).
        """
        self.settings = settings or Settings()
        self._notify = notify or (lambda level, msg: log.log(logging.ERROR if level == "error" else logging.INFO, msg))
        self._factory = backend_factory or default_backend
        self.worker = ModelWorker()
        self._lock = threading.RLock()
        self._last: _Request | None = None
        self._plans: dict[str, BudgetPlan] = {}
        self._counter = memo_counter(approx_tokens)
        self.syntax = SyntaxCheckers(self.settings)
        self.context = DocumentContexts(
            self.settings, context_fn, self.worker, lock=self._lock, counter=lambda: self._counter,
            preview=self._preview, prompt=self._plan, busy=self._busy, parse=self.syntax.parse,
        )
        self.model_state = "not loaded"
        self.model_error: str | None = None
        self.model_error_shown: str | None = None  #: the last load error shown to the user (not repeated)
        self.model_path: str | None = None
        self.last: dict[str, Any] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=32)  #: timings of the latest answered requests
        self.last_prompt = ""  #: the prompt of the last model request that was not cancelled
        self.totals = {
            "requests": 0, "model_requests": 0, "typed_along": 0, "attached": 0, "shared": 0,
            "cancelled": 0, "prompt_tokens": 0, "prompt_tokens_reused": 0, "generated_tokens": 0,
            "state_loads": 0, "warmups": 0,
        }

    # ------------------------------------------------------------------ model lifecycle

    def start(self) -> Future:
        """Load the model in the background; a failure is reported through ``notify``."""
        self.model_state, self.model_error = "loading", None
        settings = self.settings
        fut = self.worker.load(lambda: self._factory(settings))
        fut.add_done_callback(self._loaded)
        return fut

    def _loaded(self, fut: Future) -> None:
        if fut.cancelled():
            return
        err = fut.exception()
        if err is not None:
            if "superseded" in str(err):
                return
            repeated = self.model_error_shown == str(err)  # a retry (e.g. on a settings change) that failed the same way
            self.model_state, self.model_error = "failed", str(err)
            if not repeated:
                self.model_error_shown = str(err)
                self._notify("error", f"sc2lsp: no completions: {err}")
            return
        self.model_error_shown = None
        backend: Backend = fut.result()
        self.model_state = "ready"
        self.model_path = str(backend.model_path) if backend.model_path is not None else None
        # through the worker's counter, never the backend itself: a count never touches a freed model
        self._counter = memo_counter(self.worker.tokens.count if self.worker.tokens.exact else approx_tokens)
        backend.notify = self._notify  # a remote backend reports its endpoint's state changes itself
        for warning in getattr(backend, "warnings", ()):
            self._notify("warning", f"sc2lsp: {warning}")
        self._plans.clear()
        pending = self.context.take_pending()
        if pending is not None:  # didOpen came before the model was loaded: warm up now
            self.warm(pending)

    def configure(self, settings: Settings) -> None:
        """Apply new settings; the model is loaded again only if a setting it depends on changed."""
        old, self.settings = self.settings, settings
        self.context.configure(settings)
        self.syntax.configure(settings)
        if settings.model_key() != old.model_key() or self.model_state == "failed":
            self.start()

    def close(self) -> None:
        self.context.close()
        self.syntax.close()
        self.worker.close()

    # ------------------------------------------------------------------ warm-up

    def warm(self, cur: Cursor) -> bool:
        """Evaluate the prompt for ``cur`` in the background (on didOpen, or when typing pauses);
        its complete context becomes the document's once evaluated (``DocumentContexts.warm``)."""
        if not self.context.warm(cur, self.model_state):
            return False
        self.totals["warmups"] += 1
        return True

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no warm-up is being prepared and the model worker has nothing to do."""
        return self.context.wait_idle(timeout)

    # ------------------------------------------------------------------ completions

    def complete(self, cur: Cursor) -> Ticket:
        t0 = time.perf_counter()
        self.totals["requests"] += 1
        if not 0 <= cur.offset <= len(cur.text):
            return Ticket.done(Suggestion("", "none", "bad_position"))
        if not self.settings.enabled_for(cur.language):
            return Ticket.done(Suggestion("", "none", "disabled"))
        if self.model_state == "failed":
            return Ticket.done(Suggestion("", "none", "no_model"))
        prefix, suffix = cur.text[: cur.offset], cur.text[cur.offset:]
        with self._lock:
            last = self._last
            if last is not None and last.cursor.uri == cur.uri and last.suffix == suffix:
                if last.prefix == prefix and self._reusable(last):
                    self.totals["shared"] += 1
                    return self._wait_for(last, "shared", t0)
                if len(prefix) > len(last.prefix) and prefix.startswith(last.prefix):
                    typed = prefix[len(last.prefix):]
                    ticket = self._typed_along(last, typed, cur, prefix, suffix, t0)
                    if ticket is not None:
                        return ticket
            req = self._new_request(cur, prefix, suffix)
            self._last = req
            return self._wait_for(req, "model", t0)

    @staticmethod
    def _reusable(req: _Request) -> bool:
        """Whether a request's result may answer the same cursor again."""
        if req.job.cancelled:
            return False
        if not req.done.done():
            return True
        return req.done.result().reason not in ("cancelled", "prompt_time", "no_model") and not req.done.result().reason.startswith("error")

    def _typed_along(self, last: _Request, typed: str, cur: Cursor, prefix: str, suffix: str, t0: float) -> Ticket | None:
        if last.done.done():
            shown = last.done.result().text
            rest = advance_suggestion(shown, typed)
            if rest:
                text = postprocess(rest, prefix, suffix, self._pp_options(cur))
                if text:
                    self.totals["typed_along"] += 1
                    ms = (time.perf_counter() - t0) * 1000
                    s = Suggestion(text, "typed_along", "typed_along", rest, {"total_ms": round(ms, 3), "source": "typed_along"})
                    self.last = s.timings
                    self.recent.append(s.timings)
                    return Ticket.done(s)
            return None
        partial = last.job.partial
        # nothing generated yet (still evaluating the prompt): superseding loses nothing, the new
        # prompt extends the one being evaluated
        if last.job.cancelled or not partial or not (partial.startswith(typed) or typed.startswith(partial)):
            return None
        # the generation for an earlier keystroke is still running and agrees so far: wait for it
        self.totals["attached"] += 1
        out: Future = Future()
        last.waiters += 1

        def finish(done: Future) -> None:
            s: Suggestion = done.result()
            rest = advance_suggestion(s.text, typed) if s.text else None
            text = postprocess(rest, prefix, suffix, self._pp_options(cur)) if rest else ""
            if text:
                ms = (time.perf_counter() - t0) * 1000
                timings = dict(s.timings, total_ms=round(ms, 3), source="attached")
                resolve(out, Suggestion(text, "attached", s.reason, rest, timings))
                return
            # it went elsewhere: ask the model (the prompt is cached up to the cursor)
            with self._lock:
                if self._last is last:
                    req = self._new_request(cur, prefix, suffix)
                    self._last = req
                    inner = self._wait_for(req, "model", t0).future
                    inner.add_done_callback(lambda f: resolve(out, f.result()))
                else:
                    resolve(out, Suggestion("", "none", "superseded"))

        last.done.add_done_callback(finish)
        return Ticket(out, last.release)

    def _wait_for(self, req: _Request, source: str, t0: float) -> Ticket:
        out: Future = Future()
        req.waiters += 1

        def relay(done: Future) -> None:
            s: Suggestion = done.result()
            if source != "model":
                ms = (time.perf_counter() - t0) * 1000
                s = Suggestion(s.text, source, s.reason, s.raw, dict(s.timings, total_ms=round(ms, 3), source=source))
            resolve(out, s)

        req.done.add_done_callback(relay)
        return Ticket(out, req.release)

    def _plan(self, cur: Cursor, prefix: str, suffix: str,
              context: tuple[SourceFile, ...] | None = None) -> tuple[str, str, int, str, BudgetPlan]:
        """(kept prefix, kept suffix, max new tokens, prompt, plan) for a request at ``cur``;
        ``context``: these files instead of the document's committed (or a new) context."""
        s = self.settings
        max_tokens, total = self._sizes()
        plan = plan_budget(prefix, suffix, total, self._counter, previous=self._plans.get(cur.uri))
        self._plans[cur.uri] = plan
        p, sfx = plan.cut(prefix, suffix)
        if context is None:
            context = self.context.for_request(cur, plan, sfx)
        prompt = infill_prompt(p, sfx, path=cur.path, repo=cur.repo, context=context, mode=FimMode(s.fim_mode))
        return p, sfx, max_tokens, prompt, plan

    @property
    def count_tokens(self) -> Callable[[str], int]:
        """The token counter prompts are planned with (the model's tokenizer once it is loaded)."""
        return self._counter

    def _sizes(self) -> tuple[int, int]:
        """(max new tokens, prompt tokens of text) for the loaded model and the settings."""
        s = self.settings
        backend = self.worker.backend
        n_ctx = backend.n_ctx if backend is not None else s.context_length
        return prompt_budget(n_ctx, s.max_tokens, s.context_budget)

    def _preview(self, cur: Cursor, prefix: str, suffix: str) -> BudgetPlan:
        """The budget plan a request at ``cur`` would have now (not remembered: a warm-up's first look)."""
        return plan_budget(prefix, suffix, self._sizes()[1], self._counter, previous=self._plans.get(cur.uri))

    def _busy(self) -> bool:
        """Whether a completion is being generated (asked under the lock)."""
        last = self._last
        return last is not None and not last.done.done()

    def _new_request(self, cur: Cursor, prefix: str, suffix: str) -> _Request:
        s = self.settings
        t0 = time.perf_counter()
        p, sfx, max_tokens, prompt, _ = self._plan(cur, prefix, suffix)
        # mid-line only the first line is ever shown (core.postprocess): stop generating at its end
        single_line = not s.multiline or mid_line(suffix)
        job = Job(
            prompt=prompt,
            max_tokens=max_tokens,
            stop=STOP_TOKENS + (("\n",) if single_line else ()),
            time_limit_s=s.max_predict_ms / 1000,
            prompt_time_limit_s=s.max_prompt_ms / 1000,
            heal_bytes=self._heal_bytes(p),
            enough=None if single_line or not s.stop_when_settled else self._enough(cur, p, sfx),
        )
        req = _Request(cur, prefix, suffix, p, sfx, job, plan_ms=(time.perf_counter() - t0) * 1000)
        self.totals["model_requests"] += 1
        self.context.submitted()
        job.future.add_done_callback(lambda f: self._finish(req, f))
        self.worker.submit(job, supersede=True)
        self.syntax.preparse(cur.uri, cur.language, p + sfx)  # post-processing's first check, done while generating
        return req

    def _enough(self, cur: Cursor, prefix: str, suffix: str) -> Callable[[str], bool]:
        """The generation's stop test: what post-processing will show is settled (judged again
        only when a line was completed or the line being written got its indentation, the only
        changes ``settled`` looks at)."""
        options, seen = self._pp_options(cur), [None]

        def enough(text: str) -> bool:
            eol = text.rfind("\n")
            key = (eol, bool(text[eol + 1:].strip()))  # the line being written has its indentation
            if key == seen[0]:
                return False
            seen[0] = key
            return settled(text, prefix, suffix, options)

        return enough

    def _heal_bytes(self, cut_prefix: str) -> int:
        """How much of the prompt's end token healing may take back: the kept prefix, which ends
        the prompt in SPM order (in PSM ``<fim_suffix>`` follows it, so nothing)."""
        s = self.settings
        if not s.token_healing or FimMode(s.fim_mode) is not FimMode.SPM:
            return 0
        return len(cut_prefix.encode("utf-8"))

    def _pp_options(self, cur: Cursor) -> PostprocessOptions:
        s = self.settings
        return PostprocessOptions(language=cur.language, max_lines=s.max_lines, multiline=s.multiline)

    def _finish(self, req: _Request, fut: Future) -> None:
        """On the worker thread: post-process a finished generation."""
        err = fut.exception()
        if err is not None:
            log.error("completion failed: %s", err)
            resolve(req.done, Suggestion("", "none", f"error: {err}"))
            return
        gen: Generation = fut.result()
        t = gen.timings
        tp = time.perf_counter()
        text = ""
        if gen.text and gen.stop_reason != "cancelled":
            checker = self.syntax.checker(req.cursor.uri, req.cursor.language)
            text = postprocess(gen.text, req.cut_prefix, req.cut_suffix, self._pp_options(req.cursor), checker,
                               truncated=gen.stop_reason in ("length", "time"))
        pp_ms = (time.perf_counter() - tp) * 1000
        timings = {
            "source": "model",
            "plan_ms": round(req.plan_ms, 3),
            "queue_ms": round(req.job.queue_ms, 3),
            "prompt_ms": round(t.prompt_ms, 3),
            "generate_ms": round(t.generate_ms, 3),
            "postprocess_ms": round(pp_ms, 3),
            "total_ms": round((time.perf_counter() - req.job.submitted_at) * 1000, 3),
            "prompt_tokens": t.prompt_tokens,
            "prompt_tokens_reused": t.prompt_tokens_reused,
            "prompt_tokens_evaluated": t.prompt_tokens_evaluated,
            "generated_tokens": t.generated_tokens,
            "state_loads": t.state_loads,
            "healed_tokens": t.healed_tokens,
            "stop_reason": gen.stop_reason,
        }
        ctx = self.context.committed(req.cursor.uri)
        if ctx is not None:
            timings["context_files"] = len(ctx.files)
            timings["context_ms"] = round(ctx.ms, 3)
            timings["context_complete"] = ctx.complete
        if gen.stop_reason == "cancelled":
            self.totals["cancelled"] += 1
        else:
            self.last = timings
            self.last_prompt = req.job.prompt
            self.recent.append(timings)
            for k in ("prompt_tokens", "prompt_tokens_reused", "generated_tokens", "state_loads"):
                self.totals[k] += timings[k]
        resolve(req.done, Suggestion(text, "model", gen.stop_reason, gen.text, timings))

    # ------------------------------------------------------------------ status

    def _describe(self) -> dict | None:
        """A remote backend's own report (it holds no native model, so any thread may ask it)."""
        backend = self.worker.backend
        if backend is None or backend.model_path is not None:
            return None
        return backend.describe()

    def status(self) -> dict[str, Any]:
        info = self.worker.info  # a snapshot from the worker thread: never the model itself
        s = self.settings
        return {
            "model": s.model,
            "model_path": self.model_path,
            "state": self.model_state,
            "error": self.model_error,
            "device": info.get("device"),
            "n_ctx": info.get("n_ctx"),
            "threads": s.threads,
            "gpu_layers": s.gpu_layers,
            "fim_mode": s.fim_mode,
            "last": dict(self.last),
            "recent": latency_summary(list(self.recent)),
            "totals": dict(self.totals),
            "worker": dict(self.worker.stats, idle=self.worker.idle() and not self.context.preparing),
            "cache": {
                "kv_tokens": info.get("cached_tokens", 0),
                "saved_states": info.get("saved_states", 0),
                "saved_state_bytes": info.get("saved_state_bytes", 0),
                "state_loads": info.get("state_loads", 0),
            },
            "settings": {k: v for k, v in asdict(s).items()},
            "remote": self._describe(),
        }
