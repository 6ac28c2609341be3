"""The ``Backend`` interface (sc2lsp/backends/base.py) is what the worker and the engine use:
the llama.cpp backend implements all of it, and a backend with only the mandatory capabilities
(no piece table, no KV states, no exact token counter: a remote server) works in the engine."""

from __future__ import annotations

import os
from pathlib import Path

from sc2lsp.backends.base import Backend, Generation, check_backend
from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings
from sc2lsp.config import Settings
from sc2lsp.engine import Cursor, Engine

from backend_double import DoubleBackend

ROOT = Path(__file__).resolve().parents[2]
TINY = os.environ.get("SC2LSP_E2E_MODEL", str(ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"))


def test_llama_cpp_backend_implements_the_interface():
    b = LlamaCppBackend(TINY, LlamaSettings(n_threads=1, state_cache_mb=1))
    try:
        assert check_backend(b) == []
        assert isinstance(b, Backend)
        assert b.token_counter("def f():\n") == len(b.tokenize("def f():\n"))
        assert b.pieces is not None and b.states is not None and b.cached_tokens == 0
        g = b.generate("<fim_prefix>def add(a, b):\n    return <fim_suffix>\n<fim_middle>", max_tokens=3,
                       time_limit_s=None, prompt_time_limit_s=None, should_stop=lambda: False, stop=("\n",),
                       on_text=lambda text: None, heal_bytes=0)
        assert isinstance(g, Generation) and b.cached_tokens > 0
        assert b.warm("<fim_prefix>x", should_stop=lambda: False).stop_reason == "warm"
    finally:
        b.close()


def test_check_backend_names_what_is_missing():
    class Partial:
        name = "partial"
        n_ctx = 2048

        def generate(self, prompt, *, max_tokens, stop=()):
            return Generation("", "stop")

    missing = check_backend(Partial())
    assert "model_path" in missing and "pieces" in missing and "warm()" in missing and "close()" in missing
    assert "generate(heal_bytes=)" in missing and "generate(on_text=)" in missing
    assert check_backend(DoubleBackend()) == []


def test_engine_with_a_backend_without_optional_capabilities():
    """No token counter (approximate budget), no pieces (healing ignored), no states: the engine
    still completes and reports status."""

    class Remote(DoubleBackend):
        name = "remote"
        device = "http://127.0.0.1:1"

        def __init__(self):
            self.prompts = []

        token_counter = None

        def generate(self, prompt, *, max_tokens, heal_bytes=0, **kw):
            self.prompts.append((prompt, heal_bytes))
            return Generation("a + b", "stop")

    backend = Remote()
    e = Engine(Settings(syntax_check=False), backend_factory=lambda s: backend)
    e.start().result(timeout=5)
    try:
        text = "def add(a, b):\n    return \n"
        s = e.complete(Cursor("u", text, text.index("return ") + 7, "python")).future.result(timeout=5)
        assert s.text == "a + b" and len(backend.prompts) == 1
        st = e.status()
        assert st["device"] == "http://127.0.0.1:1" and st["model_path"] is None
        assert st["cache"] == {"kv_tokens": 0, "saved_states": 0, "saved_state_bytes": 0, "state_loads": 0}
    finally:
        e.close()
