"""A test double of ``sc2lsp.backends.base.Backend`` for pure engine/worker unit tests (the
engine's logic is under test; e2e tests always run the real model through llama.cpp)."""

from __future__ import annotations

from sc2lsp.backends.base import Generation


class DoubleBackend:
    """Implements the whole ``Backend`` interface with the capabilities of a remote backend
    (no piece table, no KV states); subclasses override ``generate``."""

    name = "double"
    model_path = None
    n_ctx = 4096
    device = None
    notify = None
    pieces = None
    cached_tokens = None
    states = None

    @property
    def token_counter(self):
        return lambda text: len(text.encode())

    def generate(self, prompt, *, max_tokens, time_limit_s=None, prompt_time_limit_s=None, should_stop=None,
                 stop=(), on_text=None, heal_bytes=0) -> Generation:
        return Generation("", "stop")

    def warm(self, prompt, *, should_stop=None) -> Generation:
        return Generation("", "warm")

    def describe(self) -> None:
        return None

    def close(self) -> None:
        pass
