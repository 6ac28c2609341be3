"""The remote backend against a real ``python -m llama_cpp.server`` (llama-cpp-python's
OpenAI-compatible server) serving the embedded sc2-tiny GGUF on 127.0.0.1."""

from __future__ import annotations

import threading
import time

import pytest

from remote_helpers import GGUF, LlamaCppPythonServer
from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings
from sc2lsp.backends.openai_api import OpenAIBackend
from sc2lsp.backends.remote import RemoteConfig
from sc2lsp.core.prompt import infill_prompt
from sc2lsp.core.tokens import STOP_TOKENS

pytestmark = pytest.mark.slow

DEMO = GGUF.parents[2] / "examples" / "demo" / "geometry.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LlamaCppPythonServer(tmp_path_factory.mktemp("lcs")) as s:
        yield s


@pytest.fixture(scope="module")
def local():
    b = LlamaCppBackend(GGUF, LlamaSettings(n_threads=1))
    yield b
    b.close()


def prompts() -> list[str]:
    src = DEMO.read_text()
    out = []
    for marker in ("        return ", "def centroid", "import "):
        off = src.index(marker) + len(marker)
        out.append(infill_prompt(src[:off], src[off:], path="geometry.py"))
    return out


def test_remote_equals_local_greedy(server, local):
    remote = OpenAIBackend(RemoteConfig(endpoint=server.url, model="sc2-tiny"))
    for prompt in prompts():
        want = local.generate(prompt, max_tokens=32, stop=STOP_TOKENS)
        got = remote.generate(prompt, max_tokens=32, stop=STOP_TOKENS)
        assert got.text == want.text and want.text, (got, want)
        assert got.stop_reason == want.stop_reason
        assert remote.count_tokens(prompt) == len(local.tokenize(prompt))
    assert "tokenize" in remote.describe()["tokenizer"]


def test_superseded_request_is_closed_and_the_server_sees_it(server):
    remote = OpenAIBackend(RemoteConfig(endpoint=server.url, model="sc2-tiny"))
    prompt = prompts()[0]
    before = server.log().count("Disconnected from client")
    stop = threading.Event()
    seen: list[str] = []

    def on_text(text: str) -> None:
        seen.append(text)
        if len(seen) == 3:
            stop.set()  # superseded after three tokens

    t0 = time.perf_counter()
    g = remote.generate(prompt, max_tokens=2000, stop=(), should_stop=stop.is_set, on_text=on_text)
    elapsed = time.perf_counter() - t0
    assert g.stop_reason == "cancelled" and len(seen) < 20, (g, len(seen))
    assert elapsed < 5, elapsed
    end = time.monotonic() + 10
    while server.log().count("Disconnected from client") == before and time.monotonic() < end:
        time.sleep(0.05)
    assert server.log().count("Disconnected from client") == before + 1, server.log()[-1500:]
    # and the next request is served normally
    assert remote.generate(prompt, max_tokens=8, stop=STOP_TOKENS).text


def test_enough_ends_the_stream_where_the_local_backend_ends(server, local):
    """``on_text`` saying the text is enough ("done", a settled suggestion) closes the stream: the
    same text as the local backend stopped by the same test, and the server sees the client go."""
    remote = OpenAIBackend(RemoteConfig(endpoint=server.url, model="sc2-tiny"))
    prompt = prompts()[1]
    enough = lambda text: len(text) >= 12  # noqa: E731
    want = local.generate(prompt, max_tokens=64, stop=(), on_text=enough)
    before = server.log().count("Disconnected from client")
    got = remote.generate(prompt, max_tokens=64, stop=(), on_text=enough)
    assert want.stop_reason == got.stop_reason == "done" and got.text == want.text and len(got.text) >= 12
    end = time.monotonic() + 10
    while server.log().count("Disconnected from client") == before and time.monotonic() < end:
        time.sleep(0.05)
    assert server.log().count("Disconnected from client") == before + 1


def test_generation_cap_is_a_request_timeout(server):
    remote = OpenAIBackend(RemoteConfig(endpoint=server.url, model="sc2-tiny"))
    g = remote.generate(prompts()[1], max_tokens=2000, stop=(), time_limit_s=0.05)
    assert g.stop_reason == "time" and g.text and g.timings.generated_tokens < 2000


def test_warm_up_caches_the_prompt(server):
    remote = OpenAIBackend(RemoteConfig(endpoint=server.url, model="sc2-tiny"))
    prompt = prompts()[2]
    assert remote.warm(prompt).stop_reason == "warm"
    log = len(server.log())
    remote.generate(prompt, max_tokens=4, stop=STOP_TOKENS)
    time.sleep(0.2)
    after = server.log()[log:]
    assert "full prompt already cached" in after or "prefix-match hit" in after, after
