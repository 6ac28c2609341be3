"""Configuring a remote model: models.toml remote entries, the endpoint/api/apiKeyEnv/caBundle
settings, and which backend configuration they give (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sc2lsp.backends.remote_config import remote_config
from sc2lsp.config import Settings, parse_settings
from sc2lsp.errors import UserError
from sc2lsp.models.registry import load_registry, parse_models_toml, resolve

ROOT = Path(__file__).resolve().parents[2]

REMOTE = """
default = "team-7b"
[models.team-7b]
description = "StarCoder2-7B on the team's GPU box"
endpoint = "https://gpu-box.internal:8080"
api = "llama-server"
model = "starcoder2-7b"
api_key_env = "TEAM_LLM_KEY"
ca_bundle = "certs/team-ca.pem"
context_length = 4096
tokenizer = "sc2-tiny"
"""


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    user = tmp_path / "cfg" / "sc2lsp" / "models.toml"
    user.parent.mkdir(parents=True)
    user.write_text(REMOTE)
    return load_registry(ROOT / "models.toml", user)


def test_remote_entry_parses(registry, tmp_path):
    e = registry.models["team-7b"]
    assert e.remote is not None and e.quants == {} and e.context_length == 4096
    assert (e.remote.endpoint, e.remote.api, e.remote.model, e.remote.api_key_env) == (
        "https://gpu-box.internal:8080", "llama-server", "starcoder2-7b", "TEAM_LLM_KEY")
    assert e.remote.ca_bundle == tmp_path / "cfg" / "sc2lsp" / "certs" / "team-ca.pem"
    with pytest.raises(UserError, match="served by https://gpu-box.internal:8080"):
        resolve("team-7b", registry=registry)


@pytest.mark.parametrize("extra, words", [
    ('api_key = "sk-123"', "never put a key in models.toml"),
    ('api = "grpc"', "must be one of openai, llama-server"),
    ('quants = {}', "unknown key"),
])
def test_remote_entry_errors(tmp_path, extra, words):
    p = tmp_path / "models.toml"
    p.write_text(f'[models.x]\ndescription = "d"\nendpoint = "http://127.0.0.1:1"\n{extra}\n')
    with pytest.raises(UserError, match=words):
        parse_models_toml(p)
    p.write_text('[models.x]\ndescription = "d"\nendpoint = "gpu-box:8080"\n')
    with pytest.raises(UserError, match="http:// or https://"):
        parse_models_toml(p)


def test_entry_gives_the_backend_config_and_settings_override_it(registry):
    cfg = remote_config(Settings(model="team-7b", context_length=8192), registry)
    assert (cfg.endpoint, cfg.api, cfg.model, cfg.api_key_env) == (
        "https://gpu-box.internal:8080", "llama-server", "starcoder2-7b", "TEAM_LLM_KEY")
    assert cfg.n_ctx == 4096 and cfg.ca_bundle.endswith("team-ca.pem")
    assert cfg.tokenizer and cfg.tokenizer.endswith("sc2-tiny-q8_0.gguf")  # a local entry's GGUF counts tokens
    over = remote_config(Settings(model="team-7b", endpoint="http://127.0.0.1:9000", api="openai",
                                  api_key_env="OTHER_KEY"), registry)
    assert (over.endpoint, over.api, over.api_key_env, over.model) == (
        "http://127.0.0.1:9000", "openai", "OTHER_KEY", "starcoder2-7b")


def test_endpoint_setting_alone_makes_the_model_remote(registry):
    assert remote_config(Settings(model="sc2-tiny"), registry) is None  # local as before
    cfg = remote_config(Settings(model="sc2-tiny", endpoint="http://127.0.0.1:8000/v1"), registry)
    assert cfg.model == "sc2-tiny" and cfg.api == "openai" and cfg.tokenizer.endswith(".gguf")
    cfg = remote_config(Settings(model="starcoder2-15b", endpoint="http://127.0.0.1:8000"), registry)
    assert cfg.tokenizer is None  # not downloaded here: the server's tokenizer or the estimate


def test_settings_parse_and_never_echo_a_pasted_key():
    s, problems = parse_settings({"endpoint": "https://gpu-box:8080", "api": "llama-server",
                                  "apiKeyEnv": "TEAM_KEY", "caBundle": "/etc/ca.pem"})
    assert problems == [] and (s.endpoint, s.api, s.api_key_env, s.ca_bundle) == (
        "https://gpu-box:8080", "llama-server", "TEAM_KEY", "/etc/ca.pem")
    assert s.model_key() != Settings().model_key()  # a new endpoint reloads the backend
    key = "sk-proj-PASTED0123456789abcdef"
    s, problems = parse_settings({"apiKeyEnv": key, "endpoint": "gpu-box:8080", "api": "grpc"})
    assert s.api_key_env == "" and s.endpoint == "" and s.api == "auto" and len(problems) == 3
    assert key not in " ".join(problems) and "NAME of an environment variable" in problems[0]
    s, problems = parse_settings({"endpoint": "https://me:hunter2pw@gpu-box:8080"})
    assert s.endpoint == "" and len(problems) == 1 and "hunter2pw" not in problems[0]
    s, problems = parse_settings({"endpoint": ""})  # VS Code's empty default: unset
    assert problems == [] and s.endpoint == ""


def test_local_gguf_counter_is_exact():
    """The counter a remote backend uses when the model's GGUF is here: the same counts as llama.cpp."""
    from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings
    from sc2lsp.backends.remote import _local_counter

    gguf = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
    count, label = _local_counter(str(gguf))
    assert label.startswith("local GGUF")
    local = LlamaCppBackend(gguf, LlamaSettings(n_threads=1))
    try:
        for text in ("<fim_prefix>a.py\ndef f(x):\n    return x<fim_suffix>\n<fim_middle>", "naïve = 'café 😀'", ""):
            assert count(text) == len(local.tokenize(text))
    finally:
        local.close()
