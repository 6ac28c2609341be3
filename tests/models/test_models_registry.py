"""The model registry: the project's models.toml, user overrides, schema errors, resolve, `models list`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sc2lsp.errors import UserError
from sc2lsp.models.registry import hf_checkpoint, load_registry, parse_models_toml, resolve

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "models.toml"
STARCODER2 = ("starcoder2-3b", "starcoder2-7b", "starcoder2-15b")

ENTRY = """
[models.{name}]
description = "a model"
license = "MIT"
context_length = 4096
repo = "someone/{name}-gguf"
default_quant = "Q4_K_M"
[models.{name}.quants.Q4_K_M]
file = "{name}.Q4_K_M.gguf"
size = 1000
"""


@pytest.fixture
def no_user_file(tmp_path, monkeypatch):
    """Isolate from the developer's own ~/.config/sc2lsp/models.toml."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty-config"))
    monkeypatch.delenv("SC2LSP_MODELS_TOML", raising=False)


def user_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "sc2lsp" / "models.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_project_file_parses_and_every_entry_is_complete(no_user_file):
    reg = load_registry()
    assert reg.sources == (PROJECT,)
    assert reg.default == "sc2-tiny"
    assert set(STARCODER2) | {"sc2-tiny"} <= set(reg.models)
    for name in STARCODER2:
        e = reg.models[name]
        assert e.license == "bigcode-openrail-m" and e.context_length == 16384
        assert e.default_quant == "Q4_K_M" and {"Q4_K_M", "Q8_0"} <= set(e.quants)
        assert e.repo and "/" in e.repo and e.revision == "main"
        for q in e.quants.values():
            assert q.file and q.file.endswith(".gguf") and q.path is None
            assert q.size and q.size > 1_000_000_000  # real multi-GB GGUFs
            assert q.sha256 is None or len(q.sha256) == 64
    sizes = [reg.models[n].quants["Q4_K_M"].size for n in STARCODER2]
    assert sizes == sorted(sizes)  # 3B < 7B < 15B
    for e in reg.models.values():
        assert e.description and e.license
    tiny = reg.models["sc2-tiny"]
    assert tiny.license == "PSF-2.0" and tiny.context_length == 2048 and tiny.repo is None
    assert tiny.quant().path == ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"  # relative to models.toml
    assert tiny.hf_checkpoint == ROOT / "models" / "sc2-tiny" / "hf"


def test_user_file_adds_and_replaces_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = user_file(tmp_path, 'default = "mine"\n' + ENTRY.format(name="mine") + ENTRY.format(name="starcoder2-3b"))
    reg = load_registry()
    assert reg.sources == (PROJECT, path) and reg.default == "mine"
    assert reg.models["mine"].source == path and reg.models["mine"].repo == "someone/mine-gguf"
    replaced = reg.models["starcoder2-3b"]
    assert replaced.repo == "someone/starcoder2-3b-gguf" and set(replaced.quants) == {"Q4_K_M"}  # whole entry
    assert reg.models["starcoder2-7b"].repo == "neopolita/starcoder2-7b-gguf"  # untouched


def test_models_toml_env_override(tmp_path, monkeypatch, no_user_file):
    own = tmp_path / "models.toml"
    own.write_text('default = "only"\n' + ENTRY.format(name="only"))
    monkeypatch.setenv("SC2LSP_MODELS_TOML", str(own))
    assert list(load_registry().models) == ["only"]


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace("context_length = 4096", 'context_length = "4k"'),
     r"models\.bad\.context_length: must be a positive integer"),
    (lambda t: t.replace("license", "licence"), r"models\.bad\.licence: unknown key"),
    (lambda t: t.replace('default_quant = "Q4_K_M"\n', ""), r"models\.bad\.default_quant: missing"),
    (lambda t: t.replace('default_quant = "Q4_K_M"', 'default_quant = "Q8_0"'),
     r"models\.bad\.default_quant: 'Q8_0' is not one of its quants"),
    (lambda t: t.replace("size = 1000", 'size = 1000\npath = "x.gguf"'),
     r"models\.bad\.quants\.Q4_K_M: needs exactly one of `file`"),
    (lambda t: t.replace("size = 1000", 'sha256 = "abc"'), r"models\.bad\.quants\.Q4_K_M\.sha256: must be 64"),
    (lambda t: t.replace("size = 1000", "size = 1000\nsize_aprox = true"),
     r"models\.bad\.quants\.Q4_K_M\.size_aprox: unknown key"),
    (lambda t: t.replace('repo = "someone/bad-gguf"\n', ""), r"models\.bad\.repo: missing"),
    (lambda t: t.replace('repo = "someone/bad-gguf"', 'repo = "no-slash"'), r"models\.bad\.repo: invalid value"),
    (lambda t: t.replace("[models.bad]", "[models.Bad]"), r"models\.Bad: invalid model name"),
    (lambda t: t.replace('description = "a model"', "description = ["), r"invalid TOML"),
    # FIM tokens and stop strings are StarCoder2's, never configured: the retired keys are errors
    (lambda t: t.replace('default_quant = "Q4_K_M"', 'default_quant = "Q4_K_M"\nstop = ["<file_sep>"]'),
     r"models\.bad\.stop: is no longer read: sc2lsp serves StarCoder2 models"),
    (lambda t: t + '\n[models.bad.tokens]\nfim_prefix = "<PRE>"\n',
     r"models\.bad\.tokens: is no longer read"),
])
def test_invalid_schema_names_file_entry_and_key(tmp_path, mutate, message):
    path = tmp_path / "models.toml"
    path.write_text(mutate(ENTRY.format(name="bad")))
    with pytest.raises(UserError, match=message) as e:
        parse_models_toml(path)
    assert str(e.value).startswith(str(path))


def test_bad_user_file_and_bad_default(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = user_file(tmp_path, 'default = "nonexistent"\n')
    with pytest.raises(UserError, match=rf"{path}: default: 'nonexistent' is not a declared model"):
        load_registry()
    user_file(tmp_path, "[models]\nx = 1\n")
    with pytest.raises(UserError, match=r"models\.x: must be a table"):
        load_registry()


def test_unknown_name_lists_the_known_names(no_user_file):
    with pytest.raises(UserError) as e:
        resolve("starcoder3")
    msg = str(e.value)
    assert "unknown model 'starcoder3'" in msg
    assert all(n in msg for n in (*STARCODER2, "sc2-tiny"))
    with pytest.raises(UserError, match="no quant 'Q3_K_XL'; known: Q4_K_M, .*Q8_0"):
        resolve("starcoder2-7b", quant="Q3_K_XL")


def test_resolve_paths_and_missing_downloads(tmp_path, monkeypatch, no_user_file):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    gguf_file = tmp_path / "m.gguf"
    gguf_file.write_bytes(b"GGUF")
    assert resolve(str(gguf_file)) == gguf_file and resolve(gguf_file) == gguf_file
    with pytest.raises(UserError, match="model file not found"):
        resolve(str(tmp_path / "other.gguf"))
    with pytest.raises(UserError, match=r"not downloaded yet; run `sc2lsp models pull starcoder2-3b`"):
        resolve("starcoder2-3b")
    with pytest.raises(UserError, match=r"run `sc2lsp models pull starcoder2-15b --quant Q8_0`"):
        resolve("starcoder2-15b", quant="q8_0")  # quant names are case-insensitive


def test_resolve_a_local_entry_and_its_size_check(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "config" / "sc2lsp" / "m").mkdir(parents=True)
    user_file(tmp_path, 'default = "loc"\n[models.loc]\ndescription = "d"\nlicense = "MIT"\ncontext_length = 64\n'
                        'default_quant = "F16"\nhf_checkpoint = "ckpt"\n'
                        '[models.loc.quants.F16]\npath = "m/loc.gguf"\nsize = 8\n')
    target = tmp_path / "config" / "sc2lsp" / "m" / "loc.gguf"  # relative to the user's models.toml
    with pytest.raises(UserError, match=f"model loc \\(F16\\) is missing: {target} does not exist"):
        resolve()
    target.write_bytes(b"GGUF" + bytes(4))
    assert resolve() == target == resolve("loc")
    target.write_bytes(b"GGUF")
    with pytest.raises(UserError, match="looks incomplete: .* has 4 bytes, models.toml says 8"):
        resolve("loc")
    with pytest.raises(UserError, match="checkpoint directory .*ckpt does not exist"):
        hf_checkpoint("loc")


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sc2lsp.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def test_models_list_json_through_the_cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SC2LSP_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), HF_HOME=str(tmp_path / "hf"))
    user_file(tmp_path, ENTRY.format(name="extra"))
    r = cli("models", "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    models = {m["name"]: m for m in out["models"]}
    assert set(STARCODER2) | {"sc2-tiny", "extra"} <= set(models)
    assert out["default"] == "sc2-tiny" and models["sc2-tiny"]["default"] is True
    for name in STARCODER2:
        quants = {q["quant"]: q for q in models[name]["quants"]}
        assert quants["Q4_K_M"]["default"] and "Q8_0" in quants
        assert all(q["present"] is False and q["path"] is None for q in quants.values())  # empty HF_HOME
        assert models[name]["license"] == "bigcode-openrail-m" and models[name]["context_length"] == 16384
    tiny = models["sc2-tiny"]["quants"][0]
    tiny_path = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
    assert tiny["present"] == tiny_path.is_file()
    if tiny["present"]:
        assert tiny["path"] == str(tiny_path)

    table = cli("models", "list", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "QUANT", "SIZE", "STATUS", "WHERE"]
    row = next(line for line in lines if line.startswith("starcoder2-3b ") and "Q4_K_M" in line)
    assert "1.89 GB" in row and "sc2lsp models pull starcoder2-3b" in row


def test_models_list_reports_a_broken_user_file_as_one_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SC2LSP_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"))
    path = user_file(tmp_path, ENTRY.format(name="x").replace("context_length = 4096", "context_length = -1"))
    r = cli("models", "list", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {path}: models.x.context_length: must be a positive integer, got int -1"], r.stderr

