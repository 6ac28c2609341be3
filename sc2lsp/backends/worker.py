"""One model in one worker thread; the newest request wins.

``ModelWorker`` owns a backend (built on its own thread by a factory, so loading never blocks the
caller) and runs one job at a time:

* a completion job (``submit``) with ``supersede=True`` cancels every older completion job:
  those still queued are answered at once with stop reason ``cancelled``, the running one stops
  between two tokens (or two prompt chunks);
* warm-up jobs (``warm``) only evaluate a prompt; only the newest is kept, and any completion job
  goes first and stops a running warm-up;
* a completion whose prompt hits its time cap is answered empty (``prompt_time``) and its prompt
  goes on being evaluated as a warm-up, so the next keystroke finds it cached.

Results are ``concurrent.futures.Future`` objects: no asyncio and no LSP types here.

The thread rule (ARCHITECTURE.md): only the worker thread calls the backend's model. Other threads
count tokens through ``worker.tokens`` (a ``TokenCounter`` whose tokenizer the worker swaps under
its lock before a model is freed, so a count never touches a freed model) and read the model's
state from ``worker.info`` (a snapshot the worker takes after each job and load).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .base import Backend, BackendFactory, Generation, Timings

log = logging.getLogger(__name__)


def resolve(fut: Future, value: Any = None, error: BaseException | None = None) -> None:
    """Set a future's outcome unless it is already done (e.g. cancelled by its waiter)."""
    try:
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)
    except InvalidStateError:
        pass


_ids = itertools.count(1)


def approx_count(text: str) -> int:
    """Token estimate while no tokenizer is loaded (about 3.5 characters per token for code)."""
    return (len(text) * 2 + 6) // 7


class TokenCounter:
    """Token counts for any thread, across model swaps.

    ``count`` runs the current backend's ``token_counter`` under a lock; the worker replaces or
    removes it under the same lock (``swap``) before it frees a model, so a count either finishes
    before the model goes or uses the estimate. A backend without an exact counter (a remote
    server that exposes none) gets the estimate. ``generation`` changes with every swap.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: Callable[[str], int] | None = None
        self.generation = 0

    def swap(self, count: Callable[[str], int] | None) -> None:
        with self._lock:
            self._count = count
            self.generation += 1

    @property
    def exact(self) -> bool:
        return self._count is not None

    def count(self, text: str) -> int:
        with self._lock:
            count = self._count
            if count is not None:
                try:
                    return count(text)
                except Exception:  # a tokenizer that fails (a remote one offline): estimate
                    log.debug("token count failed", exc_info=True)
        return approx_count(text)


@dataclass(eq=False)
class Job:
    prompt: str
    max_tokens: int = 0
    warm: bool = False
    stop: Sequence[str] = ()
    time_limit_s: float | None = None
    prompt_time_limit_s: float | None = None
    heal_bytes: int = 0  #: token healing within the prompt's last bytes (0 = off)
    #: the generation ends (stop reason "done") once this holds of the text so far: what more it
    #: would write is not wanted (``core.postprocess.settled``: it would be cut anyway)
    enough: Callable[[str], bool] | None = None
    id: int = field(default_factory=lambda: next(_ids))
    future: Future = field(default_factory=Future)
    partial: str = ""  #: the text generated so far (updated while running)
    cancelled: bool = False
    submitted_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None

    def cancel(self) -> None:
        """Stop this job: at once if it is queued, between two tokens if it runs."""
        self.cancelled = True

    @property
    def running(self) -> bool:
        return self.started_at is not None and not self.future.done()

    @property
    def queue_ms(self) -> float:
        return ((self.started_at or time.perf_counter()) - self.submitted_at) * 1000


class ModelWorker:
    def __init__(self, name: str = "sc2lsp-model"):
        self._cv = threading.Condition()
        self._queue: list[Job] = []  # completion jobs, oldest first
        self._warm: Job | None = None
        self._current: Job | None = None
        self._load: tuple[BackendFactory, Future] | None = None
        self._closed = False
        self.backend: Backend | None = None
        self.tokens = TokenCounter()  #: token counts for any thread (see the module doc)
        self.info: dict[str, Any] = {}  #: the backend's state, a snapshot taken on the worker thread
        self.load_error: BaseException | None = None
        self.loading = False
        #: counts, and milliseconds the model was busy (completions and warm-ups)
        self.stats = {"completed": 0, "cancelled": 0, "warmups": 0, "prompt_time": 0, "busy_ms": 0.0, "warm_ms": 0.0}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ API (any thread)

    def load(self, factory: BackendFactory) -> Future:
        """Replace the backend with ``factory()``, built on the worker thread after the current job.

        Queued jobs wait for it. The future holds the backend or the exception; on failure the
        worker has no backend and answers jobs with stop reason ``no_model``.
        """
        fut: Future = Future()
        with self._cv:
            if self._load is not None:
                resolve(self._load[1], error=RuntimeError("superseded by a newer model load"))
            self._load = (factory, fut)
            self.loading = True
            if self._current is not None:
                self._current.cancel()
            self._cv.notify_all()
        return fut

    def submit(self, job: Job, *, supersede: bool = True) -> Job:
        with self._cv:
            if supersede:
                for old in self._queue:
                    old.cancel()
                if self._current is not None and not self._current.warm:
                    self._current.cancel()
            if self._warm is not None:  # a newer warm-up is queued with the next keystroke
                self._warm = None
            if self._current is not None and self._current.warm:
                self._current.cancel()
            self._queue.append(job)
            self._cv.notify_all()
        return job

    def warm(self, prompt: str) -> Job:
        job = Job(prompt=prompt, warm=True)
        with self._cv:
            self._warm = job
            if self._current is not None and self._current.warm:
                self._current.cancel()
            self._cv.notify_all()
        return job

    def idle(self) -> bool:
        with self._cv:
            return self._current is None and not self._queue and self._warm is None and self._load is None

    def wait_idle(self, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.idle():
                return True
            time.sleep(0.005)
        return False

    def close(self) -> None:
        with self._cv:
            self._closed = True
            for job in self._queue:
                job.cancel()
            if self._current is not None:
                self._current.cancel()
            self._cv.notify_all()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ the worker thread

    def _next(self) -> tuple[str, Any]:
        with self._cv:
            while True:
                if self._closed:
                    return "close", None
                if self._load is not None:
                    load, self._load = self._load, None
                    return "load", load
                while self._queue and self._queue[0].cancelled:
                    self._finish_cancelled(self._queue.pop(0))
                if self._queue:
                    self._current = self._queue.pop(0)
                    self._current.started_at = time.perf_counter()
                    return "job", self._current
                if self._warm is not None:
                    self._current, self._warm = self._warm, None
                    self._current.started_at = time.perf_counter()
                    return "job", self._current
                self._cv.wait()

    def _finish_cancelled(self, job: Job) -> None:
        self.stats["cancelled"] += 1
        resolve(job.future, Generation("", "cancelled", Timings()))

    def _run(self) -> None:
        while True:
            kind, item = self._next()
            if kind == "close":
                with self._cv:
                    for job in self._queue:
                        self._finish_cancelled(job)
                    self._queue.clear()
                self._free_backend()
                return
            if kind == "load":
                self._do_load(*item)
                continue
            job: Job = item
            t0 = time.perf_counter()
            try:
                self._do_job(job)
            except BaseException as e:  # a failing job must never kill the worker
                log.exception("model job failed")
                resolve(job.future, error=e)
            finally:
                ms = (time.perf_counter() - t0) * 1000
                self.stats["busy_ms"] += ms
                if job.warm:
                    self.stats["warm_ms"] += ms
                self._snapshot()
                with self._cv:
                    self._current = None

    def _snapshot(self) -> None:
        """``info`` from the backend, read on this thread (status never touches the model)."""
        b = self.backend
        states = b.states if b is not None else None
        try:
            self.info = {
                "name": getattr(b, "name", None), "n_ctx": getattr(b, "n_ctx", None),
                "device": getattr(b, "device", None), "model_path": str(getattr(b, "model_path", "") or "") or None,
                "cached_tokens": (b.cached_tokens or 0) if b is not None else 0,
                "saved_states": len(states) if states is not None else 0,
                "saved_state_bytes": states.nbytes if states is not None else 0,
                "state_loads": states.loads if states is not None else 0,
            }
        except Exception:  # pragma: no cover - a status snapshot must not kill the worker
            log.debug("snapshot failed", exc_info=True)

    def _free_backend(self) -> None:
        self.tokens.swap(None)  # waits for a count in progress; later counts estimate
        backend, self.backend = self.backend, None
        self._snapshot()
        if backend is not None:
            try:
                backend.close()
            except Exception:  # pragma: no cover - freeing must not kill the worker
                log.exception("closing the model failed")

    def _do_load(self, factory: BackendFactory, fut: Future) -> None:
        self._free_backend()  # free the old model before loading the new one
        try:
            backend = factory()
        except BaseException as e:
            self.load_error = e
            resolve(fut, error=e)
        else:
            self.backend, self.load_error = backend, None
            self.tokens.swap(backend.token_counter)
            self._snapshot()
            resolve(fut, backend)
        finally:
            with self._cv:
                self.loading = self._load is not None

    def _do_job(self, job: Job) -> None:
        backend = self.backend
        if job.cancelled:
            self._finish_cancelled(job)
            return
        if backend is None:
            resolve(job.future, Generation("", "no_model", Timings()))
            return
        should_stop = lambda: job.cancelled  # noqa: E731
        if job.warm:
            self.stats["warmups"] += 1
            resolve(job.future, backend.warm(job.prompt, should_stop=should_stop))
            return

        def on_text(text: str) -> bool:
            job.partial = text
            return job.enough is not None and job.enough(text)

        gen = backend.generate(
            job.prompt,
            max_tokens=job.max_tokens,
            time_limit_s=job.time_limit_s,
            prompt_time_limit_s=job.prompt_time_limit_s,
            should_stop=should_stop,
            stop=job.stop,
            on_text=on_text,
            heal_bytes=job.heal_bytes,
        )
        self.stats["cancelled" if gen.stop_reason == "cancelled" else "completed"] += 1
        if gen.stop_reason == "prompt_time":
            self.stats["prompt_time"] += 1
            with self._cv:  # keep evaluating this prompt in the background unless a newer job waits
                if self._warm is None and not self._queue:
                    self._warm = Job(prompt=job.prompt, warm=True)
        resolve(job.future, gen)
