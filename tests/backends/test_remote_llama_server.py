"""The llama-server backend against llama.cpp's own ``llama-server`` on 127.0.0.1 (sc2-tiny's GGUF).

llama-server is not a Python package: ``bench/build_llama_server.sh`` builds it once into
``~/.cache/sc2lsp/llama-server/`` (~10+ minutes). Without it these tests are skipped and say so;
the OpenAI-protocol tests (tests/backends/test_remote_backend.py) need only the Python wheel.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from remote_helpers import GGUF, NEEDS_LLAMA_SERVER, llama_server_ref
from sc2lsp.backends.base import check_backend
from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings
from sc2lsp.backends.llama_server import LlamaServerBackend
from sc2lsp.backends.remote import RemoteConfig
from sc2lsp.core.prompt import infill_prompt
from sc2lsp.core.tokens import STOP_TOKENS

pytestmark = NEEDS_LLAMA_SERVER

DEMO = GGUF.parents[2] / "examples" / "demo" / "geometry.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server_ref.LlamaServer(GGUF, threads=1, n_ctx=2048, slots=2, log=log, alias="sc2-tiny",
                                      same_batches=True) as s:
        yield s


def prompt_at(marker: str, extra: str = "") -> str:
    src = DEMO.read_text()
    off = src.index(marker) + len(marker)
    return infill_prompt(src[:off] + extra, src[off:], path="geometry.py")


def slots(server) -> list[dict]:
    with urllib.request.urlopen(server.url + "/slots", timeout=5) as r:
        return json.loads(r.read())


def test_equals_local_and_reports_the_servers_cache(server):
    local = LlamaCppBackend(GGUF, LlamaSettings(n_threads=1))
    remote = LlamaServerBackend(RemoteConfig(endpoint=server.url, api="llama-server", model="sc2-tiny", session="a"))
    assert check_backend(remote) == []
    d = remote.describe()
    assert d["state"] == "ok" and d["tokenizer"] == "llama-server /tokenize" and d["id_slot"] in (0, 1)
    assert remote.n_ctx == 2048  # the slot's context, from /props
    for marker in ("        return ", "def centroid"):
        p = prompt_at(marker)
        want = local.generate(p, max_tokens=24, stop=STOP_TOKENS)
        got = remote.generate(p, max_tokens=24, stop=STOP_TOKENS)
        assert got.text == want.text and want.text, (got, want)
        assert remote.count_tokens(p) == len(local.tokenize(p))
    # a keystroke appends to the prompt: the slot's cache serves all but the new tokens
    p = prompt_at("def centroid", "(")
    g = remote.generate(p, max_tokens=4, stop=STOP_TOKENS)
    server_figures = remote.describe()["server"]
    assert g.timings.prompt_tokens_reused > 0 and g.timings.prompt_tokens_evaluated <= 3, g.timings
    assert server_figures["cache_n"] == g.timings.prompt_tokens_reused and server_figures["tokens_cached"] > 0
    assert server_figures["id_slot"] == remote.slot
    local.close()


def test_two_editors_get_two_slots(tmp_path):
    with llama_server_ref.LlamaServer(GGUF, threads=1, n_ctx=512, slots=2, alias="sc2-tiny",
                                      same_batches=True) as srv:
        a = LlamaServerBackend(RemoteConfig(endpoint=srv.url, api="llama-server", model="sc2-tiny", session="x"))
        b = LlamaServerBackend(RemoteConfig(endpoint=srv.url, api="llama-server", model="sc2-tiny", session="x"))
        assert {a.slot, b.slot} == {0, 1}  # the same session hash, yet each took a slot nobody used
        a.generate(prompt_at("import "), max_tokens=2, stop=STOP_TOKENS)
        assert a.describe()["server"]["id_slot"] == a.slot


def test_cancelled_stream_stops_the_server(server):
    remote = LlamaServerBackend(RemoteConfig(endpoint=server.url, api="llama-server", model="sc2-tiny", session="c"))
    stop = threading.Event()
    seen: list[str] = []

    def on_text(text: str) -> None:
        seen.append(text)
        if len(seen) == 3:
            stop.set()

    g = remote.generate(prompt_at("        return "), max_tokens=1500, stop=(), should_stop=stop.is_set, on_text=on_text)
    assert g.stop_reason == "cancelled"
    end = time.monotonic() + 5
    while time.monotonic() < end:
        slot = [s for s in slots(server) if s["id"] == remote.slot][0]
        if not slot["is_processing"]:
            break
        time.sleep(0.02)
    assert not slot["is_processing"], slot  # the server stopped generating for the closed stream
    assert slot["next_token"][0]["n_decoded"] < 1500, slot["next_token"]


def test_unknown_model_name(server):
    msgs: list = []
    b = LlamaServerBackend(RemoteConfig(endpoint=server.url, api="llama-server", model="starcoder2-15b"))
    b.notify = lambda level, m: msgs.append(m)
    assert b.generate("x", max_tokens=2).stop_reason == "no_model"
    assert len(msgs) == 1 and "does not serve the model 'starcoder2-15b'" in msgs[0] and "sc2-tiny" in msgs[0]
