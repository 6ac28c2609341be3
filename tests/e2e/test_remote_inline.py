"""The e2e inline-completion tests with the remote backend: ``sc2lsp serve`` over stdio, its model
served by a real ``python -m llama_cpp.server`` on 127.0.0.1 (the same sc2-tiny GGUF).

The tests of ``test_inline.py`` that do not inspect the local model run here unchanged (typing
along, ten rapid requests of which only the last is answered, fallback, UTF-16, warm-up); the
ones below check what is specific to a remote model: its suggestion equals the local one, the
status says where it comes from, and an endpoint that goes away gives one message and comes back.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from e2e_helpers import GEOMETRY, OPTIONS, SERVER, init_params, inline, items_of, open_doc, status, wait_ready
from remote_helpers import LlamaCppPythonServer
from test_inline import (  # noqa: F401 - collected here, with this module's `client`
    RETURN_COL,
    RETURN_LINE,
    test_completion_fallback_follows_the_setting,
    test_ten_rapid_requests_only_the_last_is_answered,
    test_typing_what_the_suggestion_says_needs_no_model_call,
    test_utf16_positions_and_edits,
    test_warm_up_where_the_cursor_rests,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

URI = GEOMETRY.as_uri()
TEXT = GEOMETRY.read_text()


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    with LlamaCppPythonServer(tmp_path_factory.mktemp("lcs")) as s:
        yield s


def remote_options(url: str) -> dict:
    # token healing is a local-backend feature (a server cannot constrain the first tokens)
    return dict(OPTIONS, model="sc2-tiny", endpoint=url, api="openai", tokenHealing=False)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def client(lsp_client: LanguageClient, model_server):
    await lsp_client.initialize_session(init_params(remote_options(model_server.url)))
    st = await wait_ready(lsp_client)
    assert st["state"] == "ready", st
    open_doc(lsp_client, URI, TEXT)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def local_client(lsp_client: LanguageClient, model_path):
    await lsp_client.initialize_session(init_params(dict(OPTIONS, tokenHealing=False)))
    assert (await wait_ready(lsp_client))["state"] == "ready"
    open_doc(lsp_client, URI, TEXT)
    yield
    await lsp_client.shutdown_session()


def configure(c, **settings) -> None:
    c.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"sc2lsp": settings}))


async def test_remote_suggestion_equals_local_and_status_names_the_endpoint(client, local_client, model_server):
    # the same prompt on both sides (repository context depends on when each session indexed)
    for c in (client, local_client):
        configure(c, repoContext=False)
    await asyncio.sleep(0.2)
    try:
        for line, col in [(RETURN_LINE, RETURN_COL), (RETURN_LINE + 1, 0), (4, 0)]:
            remote = items_of(await inline(client, URI, line, col))
            local = items_of(await inline(local_client, URI, line, col))
            prompts = [(await c.protocol.send_request_async("sc2lsp/status", {"prompt": True})).last_prompt
                       for c in (client, local_client)]
            assert prompts[0] == prompts[1]
            assert [i.insert_text for i in remote] == [i.insert_text for i in local], (line, remote, local)
    finally:
        for c in (client, local_client):
            configure(c, repoContext=True)
    st = await status(client)
    assert st["device"] == model_server.url and st["model_path"] is None
    assert st["remote"]["endpoint"] == model_server.url and st["remote"]["state"] == "ok"
    # the model's GGUF is here too: tokens are counted in-process, exactly, without a round trip
    assert st["remote"]["tokenizer"].startswith("local GGUF") and st["remote"]["redacting"] is False
    assert st["last"]["source"] == "model" and st["last"]["generated_tokens"] > 0


async def test_endpoint_down_one_message_then_recovery(client, model_server):
    shown = len(client.messages)
    model_server.stop()
    try:
        uri = URI + "#down"
        open_doc(client, uri, TEXT)
        for i in range(6):  # six keystrokes against a dead endpoint
            assert items_of(await inline(client, uri, RETURN_LINE, RETURN_COL - (i % 2))) == []
        await asyncio.sleep(0.2)
        new = client.messages[shown:]
        assert len(new) == 1 and new[0].type == types.MessageType.Error, new
        assert model_server.url in new[0].message and "refused" in new[0].message
        st = await status(client)
        assert st["state"] == "ready" and st["remote"]["problem"]
    finally:
        model_server.start()
    end = time.monotonic() + 60
    items = []
    while time.monotonic() < end and not items:  # the backoff is at most 30 s
        items = items_of(await inline(client, URI, RETURN_LINE, RETURN_COL))
        await asyncio.sleep(0.5)
    assert items and items[0].insert_text.strip()
    assert "answers again" in client.messages[-1].message
