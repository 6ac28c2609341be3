"""The llama.cpp backend on the real embedded model: FIM generation, KV reuse, stopping, bad files."""

from __future__ import annotations

from pathlib import Path

import os
import pytest

from sc2lsp.backends.llama_cpp import LlamaCppBackend
from sc2lsp.core.prompt import infill_prompt
from sc2lsp.core.tokens import STOP_TOKENS
from sc2lsp.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
PREFIX = "import os\n\n\nclass Config:\n    def __init__(self, path):\n        self.path = path\n\n    def exists(self):\n        return "
SUFFIX = "\n\n    def read(self):\n        with open(self.path) as f:\n            return f.read()\n"


@pytest.fixture(scope="module")
def backend():
    return LlamaCppBackend(TINY)


def test_fim_generation(backend):
    g = backend.generate(infill_prompt(PREFIX, SUFFIX, path="config.py"), max_tokens=24, stop=STOP_TOKENS)
    assert g.text.strip(), g
    assert g.stop_reason in ("stop", "length")
    assert 0 < g.timings.generated_tokens <= 24 and g.timings.prompt_tokens > 20


def test_prefix_reuse_gives_the_same_text_as_a_cold_model(backend):
    first = infill_prompt(PREFIX, SUFFIX, path="config.py")
    backend.generate(first, max_tokens=8)
    typed = infill_prompt(PREFIX + "os", SUFFIX, path="config.py")  # SPM: one keystroke appends to the prompt
    warm = backend.generate(typed, max_tokens=16)
    assert warm.timings.prompt_tokens_reused >= len(backend.tokenize(first)) - 2
    assert warm.timings.prompt_tokens_evaluated <= 3
    cold = LlamaCppBackend(TINY).generate(typed, max_tokens=16)
    assert cold.timings.prompt_tokens_reused == 0
    assert warm.text == cold.text


def test_unrelated_prompt_after_a_cached_one(backend):
    backend.generate(infill_prompt(PREFIX, SUFFIX, path="a.py"), max_tokens=4)
    other = infill_prompt("def add(a, b):\n    return ", "\n", path="b.py")
    g = backend.generate(other, max_tokens=12)
    assert g.text == LlamaCppBackend(TINY).generate(other, max_tokens=12).text


def test_should_stop_and_time_limit(backend):
    prompt = infill_prompt(PREFIX, "", path="c.py")
    g = backend.generate(prompt, max_tokens=64, should_stop=lambda: True)
    assert g.stop_reason == "cancelled" and g.timings.generated_tokens == 1
    g = backend.generate(prompt, max_tokens=64, time_limit_s=0.0)
    assert g.stop_reason == "time" and g.timings.generated_tokens == 1


def test_missing_and_corrupt_models(tmp_path):
    with pytest.raises(UserError, match="not found|does not exist|no such"):
        LlamaCppBackend(tmp_path / "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all" * 100)
    with pytest.raises(UserError):
        LlamaCppBackend(bad)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(TINY.read_bytes()[: TINY.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated"):
        LlamaCppBackend(truncated)


def test_auto_threads_one_for_a_small_model_every_core_for_a_large_one(tmp_path):
    from sc2lsp.backends.llama_cpp import SMALL_MODEL_BYTES, auto_threads

    small, large = tmp_path / "small.gguf", tmp_path / "large.gguf"
    small.write_bytes(b"GGUF" + b"\0" * 100)
    with open(large, "wb") as f:  # sparse: no disk used
        f.truncate(SMALL_MODEL_BYTES + 1)
    assert auto_threads(small) == 1
    assert auto_threads(large) == (os.cpu_count() or 1)
    assert auto_threads(tmp_path / "missing.gguf") == (os.cpu_count() or 1)


def test_repack_setting_never_crashes_the_process():
    """``repackWeights`` on a CPU whose llama.cpp repacking segfaults (AMX): the model still
    answers, the same text as without repacking (run in a child process: a crash ends only it)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings\n"
        "from sc2lsp.core.prompt import infill_prompt\n"
        "p = infill_prompt('import os\\n\\ndef read(path):\\n    with open(path) as f:\\n        ', '\\n', path='a.py')\n"
        "texts = [LlamaCppBackend(sys.argv[1], LlamaSettings(n_threads=1, repack=r)).generate(p, max_tokens=8).text\n"
        "         for r in (True, False)]\n"
        "print(repr(texts))\n"
        "assert texts[0] == texts[1] and texts[0], texts\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(TINY)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-2000:])
