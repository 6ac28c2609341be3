"""The model backend interface: everything the worker and the engine use of a backend.

A backend runs one model for one thread (``sc2lsp.backends.worker`` owns it): it turns a FIM
prompt string (built by ``sc2lsp.core.prompt``) into greedy text, can evaluate a prompt without
generating (warm-up), and says how large its context is. ``LlamaCppBackend`` (llama.cpp in
process) implements all of it; a remote backend (an HTTP client to llama-server or vLLM) has no
KV states or piece table of its own and may count tokens remotely. What a backend may lack is an
explicit member that is ``None`` (or a no-op), never a missing attribute:

* ``token_counter``: ``None`` -> the engine counts with ``core.budget.approx_tokens``;
* ``pieces``: ``None`` -> no token healing (``generate`` ignores ``heal_bytes``);
* ``cached_tokens`` / ``states``: ``None`` -> nothing to report about a local KV cache;
* ``warm``: a backend without a prompt cache returns ``Generation("", "warm")`` at once.

``check_backend(obj)`` lists what an object lacks of this interface (the tests use it).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from ..core.healing import PieceTable


@dataclass
class Timings:
    """Per-stage times of one generation, in milliseconds, and token counts."""

    prompt_tokens: int = 0
    prompt_tokens_reused: int = 0  #: served from the KV cache, not evaluated again
    prompt_ms: float = 0.0  #: evaluating the prompt tokens that were not reused
    generated_tokens: int = 0
    generate_ms: float = 0.0
    state_loads: int = 0  #: saved KV states restored for this request (switching files or places)
    healed_tokens: int = 0  #: prompt tokens taken back by token healing (regenerated, constrained)
    passes: int = 0  #: model passes while generating (one per token without speculative decoding)
    drafted: int = 0  #: tokens drafted from the prompt (speculative decoding) and checked by the model
    accepted: int = 0  #: drafted tokens the model agreed with (generated without a pass of their own)

    @property
    def prompt_tokens_evaluated(self) -> int:
        return self.prompt_tokens - self.prompt_tokens_reused

    @property
    def total_ms(self) -> float:
        return self.prompt_ms + self.generate_ms


#: Why a generation ended: "stop" (end-of-generation token or a stop string), "length"
#: (max_tokens), "time" (generation cap), "cancelled" (should_stop), "prompt_time" (prompt cap;
#: no text), "warm" (a warm-up: prompt only), "done" (``on_text`` said the caller has what it
#: needs); the worker adds "no_model".
STOP_REASONS = ("stop", "length", "time", "cancelled", "prompt_time", "warm", "done", "no_model")


@dataclass
class Generation:
    text: str
    stop_reason: str  #: one of ``STOP_REASONS``
    timings: Timings = field(default_factory=Timings)


@runtime_checkable
class SavedStates(Protocol):
    """A backend's store of saved KV states (what ``sc2lsp/status`` reports of it)."""

    nbytes: int  #: bytes held
    loads: int  #: states restored so far

    def __len__(self) -> int: ...


@runtime_checkable
class Backend(Protocol):
    """One loaded model. Not thread-safe: only the worker thread calls it."""

    #: shown in status and logs (e.g. the GGUF file name, or ``model@host``)
    name: str
    #: the local model file, or None (a remote model)
    model_path: object | None
    #: context length in tokens: prompt + generated tokens must fit
    n_ctx: int
    #: where it runs ("cpu", "gpu (all layers)", "http://127.0.0.1:8080"), or None
    device: str | None
    #: set by the engine after loading: ``notify(level, message)`` tells the user of a change of
    #: state the backend finds later (a remote endpoint that fails, and answers again); None: unused
    notify: Callable[[str, str], None] | None

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        time_limit_s: float | None = None,
        prompt_time_limit_s: float | None = None,
        should_stop: Callable[[], bool] | None = None,
        stop: Sequence[str] = (),
        on_text: Callable[[str], bool | None] | None = None,
        heal_bytes: int = 0,
    ) -> Generation:
        """Greedy text after ``prompt`` (a FIM string with special tokens).

        Ends at an end-of-generation token, at the first of ``stop`` (cut before it), after
        ``max_tokens`` tokens, when ``should_stop()`` turns true (checked between tokens and
        between prompt chunks: "cancelled"), when generating took ``time_limit_s`` (at least one
        token is produced: "time"), or when evaluating the prompt took ``prompt_time_limit_s``
        (empty text: "prompt_time"). ``on_text(text_so_far)`` follows the generation; when it
        returns true the generation ends there ("done": what more it would write is not wanted).
        ``heal_bytes`` > 0 allows token healing within the prompt's last ``heal_bytes`` bytes;
        the text returned always starts at the end of the prompt.
        """
        ...

    def warm(self, prompt: str, *, should_stop: Callable[[], bool] | None = None) -> Generation:
        """Evaluate ``prompt`` into the cache without generating (stop reason "warm")."""
        ...

    @property
    def token_counter(self) -> Callable[[str], int] | None:
        """Exact token count of a text with this model's tokenizer, or None (approximate)."""
        ...

    @property
    def pieces(self) -> "PieceTable | None":
        """The vocabulary's token pieces (token healing), or None: no healing."""
        ...

    @property
    def cached_tokens(self) -> int | None:
        """Tokens in the live KV cache, or None (not known here)."""
        ...

    @property
    def states(self) -> SavedStates | None:
        """Saved KV states, or None (this backend saves none)."""
        ...

    def describe(self) -> dict | None:
        """More about the backend for ``sc2lsp/status`` (a remote one: endpoint, state, problem,
        tokenizer, the server's own figures), or None."""
        ...

    def close(self) -> None:
        """Free the model now (the worker calls it before loading another)."""
        ...


#: ``factory() -> Backend``: how the worker builds a backend (on its own thread).
BackendFactory = Callable[[], Backend]

_GENERATE_KEYWORDS = ("max_tokens", "time_limit_s", "prompt_time_limit_s", "should_stop", "stop", "on_text",
                      "heal_bytes")


def check_backend(obj: object) -> list[str]:
    """What ``obj`` lacks of the ``Backend`` interface (empty: it implements it)."""
    absent = object()  # getattr_static: reading a property (e.g. ``pieces``) may be expensive
    missing = [name for name in ("name", "model_path", "n_ctx", "device", "notify", "token_counter", "pieces",
                                 "cached_tokens", "states") if inspect.getattr_static(obj, name, absent) is absent]
    for method, keywords in (("generate", _GENERATE_KEYWORDS), ("warm", ("should_stop",)), ("describe", ()),
                             ("close", ())):
        fn = getattr(obj, method, None)
        if not callable(fn):
            missing.append(f"{method}()")
            continue
        params = inspect.signature(fn).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        missing += [f"{method}({k}=)" for k in keywords if k not in params]
    return missing
