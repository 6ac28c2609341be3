"""A model served by another process (llama-server, vLLM, TGI, Ollama, llama-cpp-python's server).

``RemoteBackend`` implements the same backend interface as the llama.cpp backend, so the worker
and the engine treat both alike (newest wins, time caps, typed-along and attach are theirs):

* ``generate`` streams the answer and reports the text after every event; ``should_stop`` and the
  time caps close the stream at once (``http.Stream.watch``), which is what makes the server stop
  generating for a superseded request.
* Bad states (down, slow, 4xx/5xx, garbage, a model it does not serve, a stream closed
  mid-generation) give empty results (stop reason ``no_model``) and ONE message per distinct problem
  through ``notify``; requests back off exponentially (0.5 s .. 30 s) and the first request after the
  backoff tries again; recovery is announced once.
* A prompt to an endpoint that is not on loopback first goes through ``sc2lsp.core.redact``.
* Token counting for the prompt budget, best first: the model's own tokenizer from a local file
  (GGUF vocabulary or ``tokenizer.json``: exact, and no round trip on the keystroke path), the
  server's tokenize route (exact), a UTF-8 byte count (never fewer than a byte-level BPE's
  tokens, so the prompt never overflows). ``sc2lsp/status`` says which (``remote.tokenizer``).

The wire protocols are subclasses: ``openai_api.OpenAIBackend`` and ``llama_server.LlamaServerBackend``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from ..errors import UserError
from .base import Generation, Timings
from .http import Client, RemoteError

log = logging.getLogger(__name__)

APIS = ("openai", "llama-server")
BACKOFF_S = (0.5, 30.0)  #: first and longest wait after a failure


@dataclass(frozen=True)
class RemoteConfig:
    endpoint: str
    api: str = "openai"
    model: str | None = None  #: the name the server serves the model under
    api_key_env: str | None = None  #: name of the environment variable holding the key
    ca_bundle: str | None = None
    n_ctx: int = 2048  #: used when the server does not say (llama-server's /props does)
    tokenizer: str | None = None  #: a local .gguf or tokenizer.json for counting tokens
    redact: bool | None = None  #: None: redact when the endpoint is not on loopback
    session: str = ""  #: a stable id of this editor session (llama-server: its slot)
    connect_timeout_s: float = 5.0


@dataclass
class Event:
    """One streamed event, protocol-neutral."""

    text: str = ""
    finish: str | None = None  #: stop, length, or None while generating
    server: dict | None = None  #: the server's own timings / cache figures, when it sends them


class RemoteBackend:
    api = "?"
    pieces = None  #: no token healing: a server cannot constrain the first tokens to the healed text
    states = None  #: the server keeps its own KV cache (``cached_tokens`` is what it reports)

    def __init__(self, cfg: RemoteConfig, notify: Callable[[str, str], None] | None = None):
        self.cfg = cfg
        self._key = None
        if cfg.api_key_env:
            self._key = os.environ.get(cfg.api_key_env)
            if not self._key:
                raise UserError(f"the environment variable {cfg.api_key_env} (apiKeyEnv) is not set or empty")
        try:
            self.client = Client(cfg.endpoint, api_key=self._key, ca_bundle=cfg.ca_bundle,
                                 connect_timeout=cfg.connect_timeout_s)
        except RemoteError as e:
            raise UserError(str(e)) from None
        self.endpoint = self.device = self.client.ep.url
        self.name = f"{cfg.model or 'default'} @ {self.endpoint}"
        self.model_path = None
        self.n_ctx = cfg.n_ctx
        self.redacting = (not self.client.ep.loopback) if cfg.redact is None else cfg.redact
        self.redactions = 0
        self.cached_tokens: int | None = None
        self.last_server: dict = {}
        self._notify = notify
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.problem: str | None = None  #: the current bad state, shown once
        self._slow_shown = False
        self._shown: str | None = None
        self._failures = 0
        self._retry_at = 0.0
        self.tokenizer = "estimate (UTF-8 bytes)"
        self.tokenizer_problem: str | None = None  #: why the local tokenizer could not be used
        self._count: Callable[[str], int] = _byte_count
        self.probe()

    # ------------------------------------------------------------------ health

    @property
    def notify(self) -> Callable[[str, str], None] | None:
        return self._notify

    @notify.setter
    def notify(self, notify: Callable[[str, str], None] | None) -> None:
        """Set by the engine after loading; what was found while loading is said then."""
        with self._lock:
            self._notify, pending, self._pending = notify, self._pending, []
        for level, msg in pending if notify is not None else ():
            notify(level, msg)

    def _say(self, level: str, msg: str) -> None:
        msg = self._scrub(msg)
        with self._lock:
            notify = self._notify
            if notify is None:
                self._pending.append((level, msg))
                return
        notify(level, msg)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "[api key]") if self._key else text

    def _fail(self, err: RemoteError) -> None:
        msg = self._scrub(str(err))
        self._failures += 1
        wait = min(BACKOFF_S[1], BACKOFF_S[0] * 2 ** (self._failures - 1))
        self._retry_at = time.monotonic() + wait
        self.problem = msg
        log.warning("remote model: %s (next try in %.1f s)", msg, wait)
        if msg != self._shown:  # one message per distinct problem, not one per keystroke
            self._shown = msg
            self._say("error", f"sc2lsp: no completions: {msg}")

    def _ok(self) -> None:
        if self.problem is not None:
            self._say("info", f"sc2lsp: {self.endpoint} answers again")
        self.problem, self._shown, self._failures, self._retry_at = None, None, 0, 0.0

    def backing_off(self) -> bool:
        return self.problem is not None and time.monotonic() < self._retry_at

    def probe(self) -> bool:
        """Ask the server what it serves (model name, context size, tokenizer); never raises."""
        try:
            self._probe()
        except RemoteError as e:
            self._fail(e)
            return False
        self._ok()
        return True

    def _probe(self) -> None:  # pragma: no cover - every protocol overrides it
        raise NotImplementedError

    def _check_served(self, served: list[str]) -> None:
        want = self.cfg.model
        if want and served and want not in served:
            raise RemoteError(f"{self.endpoint} does not serve the model {want!r} (it serves: "
                              f"{', '.join(served[:8])}); set `model` in models.toml or the settings", "model")

    # ------------------------------------------------------------------ tokens

    def _pick_counter(self, server_counter: Callable[[], tuple[Callable[[str], int] | None, str]]) -> None:
        """The best token counter available, chosen once: the model's own tokenizer from a local file
        (exact and in-process: no round trip on the keystroke path), else the server's tokenize
        route (exact, one round trip per text not counted before), else the byte estimate."""
        if self._count is not _byte_count:
            return
        if self.cfg.tokenizer:
            try:
                self._count, self.tokenizer = _local_counter(self.cfg.tokenizer)
                return
            except Exception as e:  # a bad tokenizer file: fall back, say why in the status
                log.warning("tokenizer %s unusable: %s", self.cfg.tokenizer, e)
                self.tokenizer_problem = f"{self.cfg.tokenizer}: {type(e).__name__}: {e}"
        count, label = server_counter()
        if count is not None:
            self._count, self.tokenizer = count, label

    @property
    def token_counter(self) -> Callable[[str], int]:
        return self.count_tokens

    def count_tokens(self, text: str) -> int:
        try:
            return self._count(text)
        except RemoteError:
            return _byte_count(text)  # an upper bound: the prompt never overflows

    def tokenize(self, text: str) -> list[int]:
        """Placeholder ids of the right count (the engine's budget only needs the count)."""
        return [0] * self.count_tokens(text)

    # ------------------------------------------------------------------ requests

    def outgoing(self, prompt: str) -> str:
        """The prompt as sent: redacted when the endpoint is not on loopback."""
        if not self.redacting:
            return prompt
        from ..core.redact import redact

        text, counts = redact(prompt)
        self.redactions += sum(counts.values()) if isinstance(counts, dict) else int(bool(counts))
        return text

    def _events(self, prompt: str, *, max_tokens: int, stop: Sequence[str], should_stop, prompt_s, generate_s,
                warm: bool) -> tuple[Iterator[Event], Any]:  # pragma: no cover - every protocol overrides it
        raise NotImplementedError

    def generate(self, prompt: str, *, max_tokens: int, time_limit_s: float | None = None,
                 should_stop: Callable[[], bool] | None = None, stop: Sequence[str] = (),
                 prompt_time_limit_s: float | None = None, on_text: Callable[[str], bool | None] | None = None,
                 heal_bytes: int = 0) -> Generation:
        """Stream a greedy completion of ``prompt``. ``heal_bytes`` is ignored (servers cannot
        constrain the first tokens to the healed text)."""
        return self._run(prompt, max_tokens, stop, should_stop, prompt_time_limit_s, time_limit_s, on_text, warm=False)

    def warm(self, prompt: str, *, should_stop: Callable[[], bool] | None = None) -> Generation:
        """Have the server evaluate (and cache) ``prompt``: one request generating at most one token."""
        return self._run(prompt, 1, (), should_stop, None, None, None, warm=True)

    def _run(self, prompt, max_tokens, stop, should_stop, prompt_s, generate_s, on_text, *, warm: bool) -> Generation:
        t = Timings()
        if self.backing_off():
            return Generation("", "warm" if warm else "no_model", t)
        if self.problem is not None and not self.probe():  # after a failure: ask what it serves first
            return Generation("", "warm" if warm else "no_model", t)
        t0 = time.perf_counter()
        text, finish, stream = "", None, None
        try:
            events, stream = self._events(self.outgoing(prompt), max_tokens=max_tokens, stop=stop,
                                          should_stop=should_stop, prompt_s=prompt_s, generate_s=generate_s, warm=warm)
            for ev in events:
                if t.generated_tokens == 0 and (ev.text or ev.finish):
                    t.prompt_ms = (time.perf_counter() - t0) * 1000
                if ev.server:
                    self._server_figures(ev.server, t)
                if ev.text:
                    t.generated_tokens += 1
                    text += ev.text
                    cut = _cut_at_stop(text, stop)
                    if cut is not None:
                        text, finish = cut, "stop"
                        break
                    if on_text is not None and not warm and on_text(text):
                        finish = "done"  # the stream is closed below: the server stops generating
                        break
                if ev.finish:
                    finish = ev.finish
        except RemoteError as e:
            if stream is not None:
                stream.close()
            if should_stop is not None and should_stop():
                return Generation("", "cancelled", t)
            self._fail(e)
            return Generation("", "warm" if warm else "no_model", t)
        finally:
            if stream is not None:
                stream.close()
        self._ok()
        end = time.perf_counter()
        if t.prompt_ms == 0:
            t.prompt_ms = (end - t0) * 1000
        t.generate_ms = max(0.0, (end - t0) * 1000 - t.prompt_ms)
        reason = getattr(stream, "reason", None)
        self._note_speed(reason, prompt_s)
        if warm:
            return Generation("", "warm" if reason is None else reason, t)
        if reason == "prompt_time" or (reason == "cancelled" and not text):
            return Generation("", reason, t)
        return Generation(text, reason or finish or "stop", t)

    def _note_speed(self, reason: str | None, prompt_s: float | None) -> None:
        """A first token later than the prompt cap is said once (until a request is in time again)."""
        if reason == "prompt_time":
            if not self._slow_shown:
                self._slow_shown = True
                self._say("warning", f"sc2lsp: {self.endpoint} is slow: no first token within {prompt_s:g} s "
                                     f"(maxPromptMs); suggestions come when it catches up")
        elif reason is None:
            self._slow_shown = False

    def _server_figures(self, server: dict, t: Timings) -> None:
        """Map a server's own figures into the timings (protocols that send them override)."""

    # ------------------------------------------------------------------ status

    def describe(self) -> dict[str, Any]:
        """What ``sc2lsp/status`` shows under ``remote`` (never the key, only its variable's name)."""
        return {
            "endpoint": self.endpoint,
            "api": self.api,
            "model": self.cfg.model,
            "api_key_env": self.cfg.api_key_env,
            "state": "ok" if self.problem is None else ("backing off" if self.backing_off() else "retrying"),
            "problem": self.problem,
            "tokenizer": self.tokenizer,
            "tokenizer_problem": self.tokenizer_problem,
            "redacting": self.redacting,
            "redactions": self.redactions,
            "proxy": f"{self.client.proxy.hostname}:{self.client.proxy.port}" if self.client.proxy else None,
            "server": dict(self.last_server),
        }

    def close(self) -> None:
        self._notify = None


def _cut_at_stop(text: str, stop: Sequence[str]) -> str | None:
    hits = [text.index(s) for s in stop if s and s in text]
    return text[: min(hits)] if hits else None


def _byte_count(text: str) -> int:
    """Never fewer than the tokens of a byte-level BPE (each token is at least one byte)."""
    return len(text.encode("utf-8"))


def _local_counter(spec: str) -> tuple[Callable[[str], int], str]:
    """A counter from a local tokenizer file: a GGUF's vocabulary or a ``tokenizer.json``."""
    path = os.path.expanduser(spec)
    if path.endswith(".gguf"):
        from .llama_cpp import vocab_tokenizer

        tokenize = vocab_tokenizer(path)
        return (lambda text: len(tokenize(text))), f"local GGUF vocabulary ({os.path.basename(path)})"
    from tokenizers import Tokenizer  # only present when the training extras are installed

    tok = Tokenizer.from_file(path)
    return (lambda text: len(tok.encode(text, add_special_tokens=False).ids)), f"local tokenizer.json ({path})"
