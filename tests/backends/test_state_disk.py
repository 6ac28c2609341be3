"""The disk tier of saved KV states: a restarted backend gets a used prompt back without evaluating
it, and a stale or damaged state file is ignored, removed and never loaded wrongly.

Real sc2-tiny through real llama.cpp; "a restart" is a second backend on the same state directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings
from sc2lsp.core.prompt import infill_prompt

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
SOURCE = (ROOT / "sc2lsp" / "engine.py").read_text()
CUT = SOURCE.index("    def _plan(")


def prompt_at(text: str, cut: int, typed: str = "") -> str:
    return infill_prompt(text[cut - 2500: cut] + typed, text[cut: cut + 1500], path="engine.py")


def backend(state_dir: Path, model: Path = TINY) -> LlamaCppBackend:
    return LlamaCppBackend(model, LlamaSettings(state_dir=str(state_dir)))


def session_one(state_dir: Path, model: Path = TINY, text: str = SOURCE) -> None:
    """A server session: the prompt at the cursor is warmed (the user paused), then it ends."""
    b = backend(state_dir, model)
    b.warm(prompt_at(text, CUT))
    b.disk.flush()
    assert len(b.disk) == 1
    b.close()


def cold_text(prompt: str) -> str:
    return LlamaCppBackend(TINY).generate(prompt, max_tokens=24).text


def state_files(state_dir: Path) -> list[Path]:
    return sorted(state_dir.glob("*/*.kv"))


def test_a_restarted_backend_restores_the_prompt_instead_of_evaluating_it(tmp_path):
    session_one(tmp_path)
    b = backend(tmp_path)
    prompt = prompt_at(SOURCE, CUT, "x")  # the first keystroke after the restart
    g = b.generate(prompt, max_tokens=24)
    assert g.timings.state_loads == 1 and b.disk.loads == 1
    assert g.timings.prompt_tokens_evaluated <= 3, g.timings
    assert g.text == cold_text(prompt)


def test_a_changed_model_file_never_gets_the_old_states(tmp_path):
    model = tmp_path / "model.gguf"
    shutil.copy(TINY, model)
    states = tmp_path / "states"
    session_one(states, model)
    old_dirs = [d for d in states.iterdir() if d.is_dir()]
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # replaced by another build
    b = backend(states, model)
    g = b.generate(prompt_at(SOURCE, CUT, "x"), max_tokens=8)
    assert g.timings.state_loads == 0 and g.timings.prompt_tokens_reused == 0
    assert all(not d.exists() for d in old_dirs)  # the old identity's states are removed


def test_a_changed_source_file_restores_only_the_shared_prefix(tmp_path):
    session_one(tmp_path)
    changed = SOURCE[: CUT - 300] + "    # an edit made while the server was not running\n" + SOURCE[CUT - 300:]
    cut = CUT + len(changed) - len(SOURCE)
    prompt = prompt_at(changed, cut)
    b = backend(tmp_path)
    g = b.generate(prompt, max_tokens=24)
    assert g.timings.state_loads == 1
    assert 0 < g.timings.prompt_tokens_reused < g.timings.prompt_tokens - 20  # the edit and after: evaluated
    assert g.text == cold_text(prompt)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_state_file_is_removed_and_never_loaded(tmp_path, damage):
    session_one(tmp_path)
    (f,) = state_files(tmp_path)
    data = bytearray(f.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-1000] ^= 0xFF  # inside the KV bytes: same length, checksum differs
    else:
        data = bytearray(b"not a state" * 10)
    f.write_bytes(bytes(data))
    b = backend(tmp_path)
    prompt = prompt_at(SOURCE, CUT, "x")
    g = b.generate(prompt, max_tokens=24)
    assert g.timings.state_loads == 0
    assert not f.exists()
    assert g.text == cold_text(prompt)


def test_the_disk_tier_stays_within_its_size(tmp_path):
    b = backend(tmp_path)
    b.warm(prompt_at(SOURCE, CUT))
    b.disk.flush()
    (f,) = state_files(tmp_path)
    b.disk.capacity = int(2.5 * f.stat().st_size)  # room for two or three such states
    for k in range(1, 4):
        b.warm(prompt_at(SOURCE, CUT - 4000 * k))  # other places: states that do not extend each other
        b.disk.flush()
    files = state_files(tmp_path)
    assert sum(f.stat().st_size for f in files) <= b.disk.capacity
    assert len(files) < 4 and not f.exists()  # the least recently used went first
