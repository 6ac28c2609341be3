"""The thread rule under a model swap: typing continuously while the model is loaded again twice.

Token counting (on the event loop and in context threads) and ``sc2lsp/status`` go through the
worker's ``TokenCounter`` and snapshot, never the model itself, so a keystroke during a reload gets
an empty answer, not an exception (before: ``'NoneType' object has no attribute 'tokenize'`` from a
freed model, or worse, a crash in llama.cpp).
"""

from __future__ import annotations

import time

import pytest

from e2e_helpers import GEOMETRY, OPTIONS
from sc2lsp.lsp.rawclient import StdioClient

pytestmark = pytest.mark.slow


def test_typing_through_two_model_reloads(model_path, tmp_path):
    log = tmp_path / "server.log"
    c = StdioClient(env={}, cwd=GEOMETRY.parent)
    try:
        c.initialize(GEOMETRY.parent, dict(OPTIONS, model=model_path, contextBudget=4096))
        assert c.wait_ready(120)["state"] == "ready"
        uri = GEOMETRY.as_uri()
        text = GEOMETRY.read_text() + "\n\ndef perimeter(rect):\n    return "
        c.open(uri, text)
        line, col = text.count("\n"), len(text.rsplit("\n", 1)[-1])
        errors, empty, answered, states = [], 0, 0, set()
        reloads = [(15, 2), (45, 1)]  # (keystroke, threads): each change of threads loads the model again
        version = 1
        for i in range(90):
            for at, threads in reloads:
                if i == at:
                    c.notify("workspace/didChangeConfiguration", {"settings": {"sc2lsp": {"threads": threads}}})
            version += 1
            ch = "abcdefghij"[i % 10]
            c.change(uri, version, ch, (line, col))
            col += 1
            ids = [c.send_request("textDocument/inlineCompletion", c.inline_params(uri, line, col)),
                   c.send_request("sc2lsp/status", {})]
            r = c.response(ids[0], 120)
            st = c.response(ids[1], 120)
            for msg in (r, st):
                if "error" in msg:
                    errors.append(msg["error"])
            if "result" in st:
                states.add(st["result"]["state"])
            items = (r.get("result") or {}).get("items", []) if "error" not in r else []
            empty += not items
            answered += bool(items)
            time.sleep(0.01)
        assert errors == []
        assert c.proc.poll() is None
        assert "loading" in states  # the reloads did happen while typing
        assert c.wait_ready(120)["state"] == "ready"
        final = c.status()
        assert final["threads"] == 1 and final["n_ctx"]
        assert answered > 0  # completions before, between and after the swaps
    finally:
        c.close()
