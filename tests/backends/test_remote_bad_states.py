"""The remote backend against a real scripted HTTP server on 127.0.0.1: bad states, proxies,
redaction, the API key, HTTPS. (The real model server: tests/backends/test_remote_backend.py.)"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from remote_helpers import ScriptedServer, free_port, self_signed
from sc2lsp.backends import remote as remote_mod
from sc2lsp.backends.base import Backend, check_backend
from sc2lsp.backends.http import Endpoint, _proxy_for
from sc2lsp.backends.openai_api import OpenAIBackend
from sc2lsp.backends.remote import RemoteConfig
from sc2lsp.errors import UserError

STOP = ("<file_sep>", "<|endoftext|>")
PROMPT = "<fim_prefix>x.py\ndef f():\n    <fim_suffix><fim_middle>"


@pytest.fixture()
def server():
    with ScriptedServer() as s:
        yield s


@pytest.fixture()
def fast_backoff(monkeypatch):
    monkeypatch.setattr(remote_mod, "BACKOFF_S", (0.2, 0.4))


def backend(url: str, **kw) -> tuple[OpenAIBackend, list]:
    msgs: list = []
    b = OpenAIBackend(RemoteConfig(endpoint=url, model=kw.pop("model", "sc2-tiny"), **kw))
    b.notify = lambda level, m: msgs.append((level, m))
    return b, msgs


def gen(b, **kw):
    return b.generate(PROMPT, max_tokens=16, stop=STOP, **kw)


def completions(server) -> int:
    return sum(r["path"].endswith("/completions") for r in server.requests)


def test_good_stream(server):
    b, msgs = backend(server.url)
    assert check_backend(b) == [] and isinstance(b, Backend)  # the interface the worker and engine use
    g = gen(b)
    assert (g.text, g.stop_reason) == ("return 42", "stop") and msgs == []
    body = json.loads([r for r in server.requests if r["path"].endswith("/completions")][0]["body"])
    assert body["prompt"] == PROMPT and body["temperature"] == 0 and body["stream"] is True
    assert body["model"] == "sc2-tiny" and body["max_tokens"] == 16 and body["stop"] == list(STOP)
    assert b.describe()["tokenizer"].startswith("estimate")  # no tokenize route here: bytes, an upper bound
    assert b.count_tokens("abc") == 3
    bad, _ = backend(server.url, tokenizer=__file__)  # not a tokenizer file
    assert bad.describe()["tokenizer"].startswith("estimate") and bad.describe()["tokenizer_problem"]


@pytest.mark.parametrize("mode, words", [
    ("500", ["500", "CUDA out of memory"]),
    ("garbage", ["not a server-sent event", "nginx"]),
    ("garbage_stream", ["not JSON"]),
    ("close_mid", ["closed"]),
])
def test_bad_state_one_message_empty_results_backoff_and_recovery(server, fast_backoff, mode, words):
    b, msgs = backend(server.url)
    server.mode = mode
    results = [gen(b) for _ in range(6)]
    assert all(r.text == "" and r.stop_reason == "no_model" for r in results), results
    errors = [m for level, m in msgs if level == "error"]
    assert len(errors) == 1, msgs  # one message, not one per keystroke
    assert all(w in errors[0] for w in words), errors
    assert server.url in errors[0] or "127.0.0.1" in errors[0]
    assert completions(server) <= 2  # backing off: the requests in between never reached the server
    assert b.describe()["problem"]
    server.mode = "good"
    time.sleep(0.45)
    g = gen(b)
    assert g.text == "return 42", g
    assert msgs[-1][0] == "info" and "answers again" in msgs[-1][1]
    assert b.describe()["problem"] is None


def test_unknown_model_name_is_named(server, fast_backoff):
    server.models = ["starcoder2-15b"]
    b, msgs = backend(server.url, model="sc2-tiny")
    assert gen(b).stop_reason == "no_model" and gen(b).stop_reason == "no_model"
    assert len(msgs) == 1 and "does not serve the model 'sc2-tiny'" in msgs[0][1] and "starcoder2-15b" in msgs[0][1]
    server.models = ["sc2-tiny"]  # the server is restarted with the model: found again
    time.sleep(0.45)
    assert gen(b).text == "return 42"


def test_endpoint_down_then_up(fast_backoff):
    port = free_port()
    b, msgs = backend(f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    assert [gen(b).stop_reason for _ in range(5)] == ["no_model"] * 5
    assert time.perf_counter() - t0 < 1.0  # refused at once, then backing off: never waits per keystroke
    assert len(msgs) == 1 and "connection refused" in msgs[0][1], msgs
    with ScriptedServer(port=port):
        time.sleep(0.45)
        assert gen(b).text == "return 42"
    assert "answers again" in msgs[-1][1]


def test_slow_first_token_becomes_a_prompt_timeout(server):
    b, msgs = backend(server.url)
    server.mode = "slow"
    t0 = time.perf_counter()
    g = gen(b, prompt_time_limit_s=0.3)
    assert g.stop_reason == "prompt_time" and g.text == "" and time.perf_counter() - t0 < 1.5
    assert gen(b, prompt_time_limit_s=0.3).stop_reason == "prompt_time"
    assert len(msgs) == 1 and msgs[0][0] == "warning" and "is slow" in msgs[0][1], msgs  # said once
    assert b.describe()["problem"] is None  # not an error: no backoff, the next request tries
    server.mode = "good"
    assert gen(b, prompt_time_limit_s=2).text == "return 42"


def test_api_key_is_sent_but_never_shown(server, monkeypatch):
    key = "sk-live-PLANTED0123456789abcdef"
    monkeypatch.setenv("TEAM_KEY", key)
    b, msgs = backend(server.url, api_key_env="TEAM_KEY")
    assert gen(b).text == "return 42"
    assert all(r["headers"].get("Authorization") == f"Bearer {key}" for r in server.requests)
    server.mode = "echo_key_401"  # a server that echoes the header back in its error
    assert gen(b).stop_reason == "no_model"
    shown = json.dumps([msgs, b.describe()])
    assert key not in shown and "401" in shown and "TEAM_KEY" in shown


def test_missing_key_variable_is_a_user_error(server, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(UserError, match="NO_SUCH_KEY_VAR"):
        backend(server.url, api_key_env="NO_SUCH_KEY_VAR")


def test_proxy_and_redaction_for_a_non_loopback_endpoint(server, monkeypatch):
    """A team server elsewhere, reached through the corporate proxy (here: the scripted server on
    127.0.0.1 answering as the proxy): the prompt it receives has the planted secrets redacted."""
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    aws = "AKIAQ3EGRHYSNL4VPXZD"
    secret = "ghp_R2d2C3poBB8LukeSkywalker0123456789"
    prompt = f'<fim_prefix>cfg.py\nAWS_KEY = "{aws}"\nTOKEN = "{secret}"\nx = <fim_suffix><fim_middle>'
    msgs: list = []
    b = OpenAIBackend(RemoteConfig(endpoint="http://team-box.example:8080", model="sc2-tiny"))
    b.notify = lambda level, m: msgs.append(m)
    assert b.redacting and b.describe()["proxy"] == f"127.0.0.1:{server.port}"
    g = b.generate(prompt, max_tokens=8, stop=STOP)
    assert g.text == "return 42", msgs
    sent = [r for r in server.requests if r["path"].endswith("/v1/completions")]
    assert sent and sent[0]["path"] == "http://team-box.example:8080/v1/completions"
    body = json.loads(sent[0]["body"])["prompt"]
    assert aws not in body and secret not in body and "x = " in body
    assert b.describe()["redactions"] >= 2


def test_loopback_is_not_redacted_and_never_proxied(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would fail if used
    b, _ = backend(server.url)
    assert not b.redacting and b.describe()["proxy"] is None
    prompt = PROMPT.replace("def f", "KEY = 'AKIAQ3EGRHYSNL4VPXZD'\ndef f")
    b.generate(prompt, max_tokens=8, stop=STOP)
    assert json.loads(server.requests[-1]["body"])["prompt"] == prompt


def test_no_proxy_is_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", ".internal,localhost")
    assert _proxy_for(Endpoint.parse("https://gpu.team.internal:8443")) is None
    p = _proxy_for(Endpoint.parse("https://llm.example.com"))
    assert p is not None and (p.hostname, p.port) == ("proxy.corp", 3128)


def test_bad_endpoints_are_user_errors():
    for url, words in [("ftp://x", "http"), ("http://user:pw@host:1", "apiKeyEnv"), ("http://h:99999", "port")]:
        with pytest.raises(UserError, match=words):
            OpenAIBackend(RemoteConfig(endpoint=url))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_https_is_verified_and_a_ca_bundle_is_honoured(tmp_path, fast_backoff):
    cert, key = self_signed(tmp_path)
    with ScriptedServer(tls=(cert, key)) as server:
        b, msgs = backend(server.url)  # a private CA: not trusted by default
        assert gen(b).stop_reason == "no_model"
        assert len(msgs) == 1 and "TLS failed" in msgs[0][1] and "caBundle" in msgs[0][1], msgs
        b, msgs = backend(server.url, ca_bundle=str(cert))
        assert gen(b).text == "return 42" and msgs == []
    with pytest.raises(UserError, match="CA bundle"):
        backend("https://127.0.0.1:1", ca_bundle=str(tmp_path / "missing.pem"))
