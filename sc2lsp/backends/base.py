"""What the engine needs from a model backend, independent of llama.cpp."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


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


@dataclass
class Generation:
    text: str
    #: "stop" (end-of-generation token), "length", "time" (generation cap), "cancelled",
    #: "prompt_time" (prompt cap; no text) or "warm" (a warm-up: prompt only)
    stop_reason: str
    timings: Timings = field(default_factory=Timings)


class Backend(Protocol):
    name: str

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        time_limit_s: float | None = None,
        should_stop: "callable[[], bool] | None" = None,
        stop: Sequence[str] = (),
    ) -> Generation: ...

    def tokenize(self, text: str) -> list[int]: ...
