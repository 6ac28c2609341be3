"""Secrets never leave the machine with a remote model: ``sc2lsp serve`` over stdio, its endpoint a
team server elsewhere (``http://team-box.example:8080``), reached through an HTTP proxy that is a
real scripted server on 127.0.0.1 recording every prompt it is sent. A workspace with planted keys:
in the edited file itself, in a module the file imports, and in ``.env``."""

from __future__ import annotations

import json
import sys
import time

import pytest

from remote_helpers import ScriptedServer
from sc2lsp.lsp.rawclient import StdioClient

pytestmark = pytest.mark.slow

AWS = "AKIAQ3EGRHYSNL4VPXZD"
GITHUB = "ghp_R2d2C3poBB8LukeSkywalker0123456789"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dcXyZ"
DOTENV = "DATABASE_PASSWORD=Pr0d-9f8a7sd6f5a4sd3f2a1s"


def workspace(tmp_path):
    (tmp_path / ".env").write_text(DOTENV + "\n")
    (tmp_path / "settings.py").write_text(f'STRIPE_KEY = "{STRIPE}"\n\ndef stripe_key():\n    return STRIPE_KEY\n')
    main = tmp_path / "app.py"
    text = (f'from settings import stripe_key\n\nAWS_ACCESS_KEY_ID = "{AWS}"\nGITHUB_TOKEN = "{GITHUB}"\n\n'
            "def connect():\n    key = stripe_key()\n    return \n")
    main.write_text(text)
    return main, text


def test_prompts_to_a_non_loopback_endpoint_carry_no_secret(tmp_path):
    main, text = workspace(tmp_path)
    with ScriptedServer() as proxy:
        env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "", "no_proxy": "", "PYTHONPATH": ":".join(sys.path)}
        c = StdioClient([sys.executable, "-m", "sc2lsp.cli", "serve"], cwd=tmp_path, env=env)
        try:
            c.initialize(tmp_path, {"model": "sc2-tiny", "endpoint": "http://team-box.example:8080",
                                    "api": "openai", "warmUp": True, "warmDelayMs": 0})
            st = c.wait_ready(timeout=120)
            assert st["state"] == "ready" and st["remote"]["redacting"] is True, st
            assert st["remote"]["proxy"] == f"127.0.0.1:{proxy.port}"
            uri = main.as_uri()
            c.open(uri, text)
            line = text.count("\n", 0, text.index("    return "))
            items = []
            for _ in range(40):  # until the index is ready and the context is in the prompt
                items = c.inline(uri, line, len("    return "), timeout=60)
                if c.status()["last"].get("context_files"):
                    break
                time.sleep(0.25)
            st = c.status()
            assert st["remote"]["redactions"] >= 2, st["remote"]
        finally:
            c.close()
        prompts = [json.loads(r["body"])["prompt"] for r in proxy.requests if r["path"].endswith("/v1/completions")]
    assert prompts, proxy.requests
    sent = "\n".join(prompts)
    assert "def connect" in sent  # the prompts did go out ...
    for secret in (AWS, GITHUB, STRIPE, "Pr0d-9f8a7sd6f5a4sd3f2a1s"):  # ... without any secret
        assert secret not in sent, secret
    assert ".env" not in sent
