"""Adapter entries of models.toml (``base`` + ``lora``): parsing, linking to the base, resolving, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sc2lsp.errors import UserError
from sc2lsp.models.registry import load_registry, resolve, resolve_files

ROOT = Path(__file__).resolve().parents[2]
TINY_GGUF = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"


@pytest.fixture
def cfg_home(tmp_path, monkeypatch):
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("SC2LSP_MODELS_TOML", raising=False)
    return home


def user_file(home: Path, text: str) -> Path:
    path = home / "sc2lsp" / "models.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def adapter(name: str = "mine", base: str = "sc2-tiny", lora: str = "mine-lora.gguf", extra: str = "") -> str:
    return f'[models.{name}]\ndescription = "an adapter"\nbase = "{base}"\nlora = "{lora}"\n{extra}'


def test_adapter_entry_takes_everything_from_its_base(cfg_home):
    path = user_file(cfg_home, adapter(extra="lora_scale = 0.5\n"))
    (path.parent / "mine-lora.gguf").write_bytes(b"x")
    reg = load_registry()
    tiny, mine = reg.models["sc2-tiny"], reg.models["mine"]
    assert mine.base == "sc2-tiny" and mine.lora == path.parent / "mine-lora.gguf" and mine.lora_scale == 0.5
    assert mine.source == path and mine.description == "an adapter" and mine.license == tiny.license
    assert (mine.quants, mine.default_quant, mine.context_length, mine.hf_checkpoint) == (
        tiny.quants, tiny.default_quant, tiny.context_length, tiny.hf_checkpoint)
    assert tiny.lora is None and tiny.base is None
    files = resolve_files("mine")
    assert files.path == resolve("sc2-tiny") and files.lora_path == mine.lora and files.lora_scale == 0.5
    assert resolve_files("sc2-tiny").lora_path is None
    assert resolve_files(str(TINY_GGUF)).lora_path is None  # a plain path


def test_models_list_shows_the_adapter(cfg_home):
    user_file(cfg_home, adapter())
    r = subprocess.run([sys.executable, "-m", "sc2lsp.cli", "models", "list", "--json"], capture_output=True,
                       text=True, cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    row = {m["name"]: m for m in json.loads(r.stdout)["models"]}["mine"]
    assert row["base"] == "sc2-tiny" and row["lora"].endswith("mine-lora.gguf")


@pytest.mark.parametrize("text, message", [
    (adapter(base="nope"), r"models.mine.base: 'nope' is not a declared model"),
    (adapter() + "\n" + adapter("second", base="mine"), r"models.second.base: 'mine' is itself an adapter entry"),
    (adapter(base="mine"), r"models.mine.base: an adapter entry cannot be its own base"),
    (adapter(extra="quants = {}\n"), r"models.mine.quants: unknown key .*an adapter entry"),
    (adapter(extra="lora_scale = 0\n"), r"models.mine.lora_scale: must be a number in \(0, 10\]"),
    (adapter(extra='lora_scale = "1"\n'), r"models.mine.lora_scale: must be a number"),
    ('[models.mine]\ndescription = "x"\nbase = "sc2-tiny"\n', r"models.mine.lora: missing \(required\)"),
    ('[models.mine]\ndescription = "x"\nlora = "a.gguf"\n', r"models.mine.base: missing \(required\)"),
    (adapter(base="Bad Name"), r"models.mine.base: invalid value"),
])
def test_bad_adapter_entries_are_one_clear_error(cfg_home, text, message):
    user_file(cfg_home, text)
    with pytest.raises(UserError, match=message):
        load_registry()


def test_missing_adapter_file_names_it_and_the_fix(cfg_home):
    path = user_file(cfg_home, adapter())
    with pytest.raises(UserError, match=r"model mine: its LoRA adapter .*mine-lora.gguf does not exist \(declared in "
                                        + str(path).replace(".", r"\.") + r"; run `python -m finetune export"):
        resolve_files("mine")


@pytest.mark.skipif(not TINY_GGUF.is_file(), reason="sc2-tiny GGUF missing")
def test_backend_rejects_bad_adapter_files_with_one_message(tmp_path):
    from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    with pytest.raises(UserError, match=r"LoRA adapter .*junk.gguf"):
        LlamaCppBackend(TINY_GGUF, LlamaSettings(lora_path=str(junk)))
    with pytest.raises(UserError, match=r"is a model, not a LoRA adapter"):  # a model given as the adapter
        LlamaCppBackend(TINY_GGUF, LlamaSettings(lora_path=str(TINY_GGUF)))
    with pytest.raises(UserError, match=r"model file not found: LoRA adapter"):
        LlamaCppBackend(TINY_GGUF, LlamaSettings(lora_path=str(tmp_path / "gone.gguf")))
