"""Settings and model failures over stdio: a message to the user, defaults, and a server that stays up."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from e2e_helpers import GEOMETRY, MODEL, OPTIONS, SERVER, init_params, inline, items_of, open_doc, plain, status, wait_ready

pytestmark = pytest.mark.slow


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def wait_for_message(client, needle: str, timeout: float = 30.0):
    for _ in range(int(timeout / 0.05)):
        for m in client.messages:
            if needle in m.message:
                return m
        await asyncio.sleep(0.05)
    raise AssertionError(f"no window/showMessage containing {needle!r}; got {[m.message for m in client.messages]}")


async def test_invalid_settings_get_a_message_and_the_default(client, model_path):
    options = dict(OPTIONS, maxTokens=-5, fimMode="middle-out", syntaxCheck="yes", noSuchSetting=1)
    await client.initialize_session(init_params(options))
    for needle in ("maxTokens=-5", "fimMode='middle-out'", "syntaxCheck='yes'", "noSuchSetting"):
        m = await wait_for_message(client, needle)
        assert m.type == types.MessageType.Warning
    st = await wait_ready(client)
    assert st["state"] == "ready"
    s = st["settings"]
    assert (s["max_tokens"], s["fim_mode"], s["syntax_check"], s["threads"]) == (64, "spm", True, 1)
    # didChangeConfiguration: a valid change applies, an invalid one warns and falls back
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"sc2lsp": {"maxTokens": 12, "maxLines": 0}}))
    await wait_for_message(client, "maxLines=0")
    s = (await status(client))["settings"]
    assert s["max_tokens"] == 12 and s["max_lines"] == 16


async def test_missing_model_is_reported_and_the_server_stays_up(client, model_path, tmp_path):
    missing = str(tmp_path / "nowhere.gguf")
    await client.initialize_session(init_params(dict(OPTIONS, model=missing)))
    m = await wait_for_message(client, "nowhere.gguf")
    assert m.type == types.MessageType.Error
    st = await wait_ready(client)
    assert st["state"] == "failed" and "nowhere.gguf" in st["error"]
    open_doc(client, GEOMETRY.as_uri(), GEOMETRY.read_text())
    assert items_of(await inline(client, GEOMETRY.as_uri(), 13, 15)) == []
    # a broken file: an error too
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"<html>not a model</html>" * 50)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"model": str(broken)}))
    await wait_for_message(client, "broken.gguf")
    # pointing the setting at a real model brings completions back without a restart
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"model": MODEL}))
    await asyncio.sleep(0.2)
    st = await wait_ready(client)
    assert st["state"] == "ready", st
    await inline(client, GEOMETRY.as_uri(), 13, 15)
    assert (await status(client))["last"]["generated_tokens"] > 0


async def test_repository_context_from_the_workspace(client, model_path, tmp_path):
    root = tmp_path / "proj"
    (root / "shapes").mkdir(parents=True)
    (root / "shapes" / "vectors.py").write_text(
        "def scale_vector(v, k):\n    \"\"\"Multiply each coordinate by k.\"\"\"\n    return [x * k for x in v]\n"
    )
    main = root / "main.py"
    main.write_text("from shapes.vectors import scale_vector\n\n\ndef grow(v):\n    return scale_vector(\n")
    await client.initialize_session(init_params(dict(OPTIONS), root=root))
    assert (await wait_ready(client))["state"] == "ready"
    open_doc(client, main.as_uri(), main.read_text())
    for _ in range(200):  # the workspace is indexed in the background
        workspaces = (await status(client))["server"]["workspaces"]
        if workspaces and workspaces[0]["indexed"]:
            break
        await asyncio.sleep(0.05)
    seconds = workspaces[0].pop("index_seconds")  # watcher started and folder scanned
    assert workspaces == [{"root": str(root), "indexed": True, "files": 2, "watching": True, "not_watching_because": None}]
    assert 0 < seconds < 60
    await inline(client, main.as_uri(), 4, len("    return scale_vector("))
    st = plain(await client.protocol.send_request_async("sc2lsp/status", {"prompt": True}))
    prompt = st["last_prompt"]
    assert "<file_sep>shapes/vectors.py\n" in prompt and "def scale_vector(v, k)" in prompt, prompt
    assert prompt.index("shapes/vectors.py") < prompt.index("<fim_prefix>")  # context first, then the file
    assert st["last"]["context_files"] >= 1
    # switched off: no context
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"repoContext": False}))
    await asyncio.sleep(0.1)
    open_doc(client, main.as_uri() + "#2", main.read_text())
    await inline(client, main.as_uri() + "#2", 4, len("    return scale_vector("))
    st = plain(await client.protocol.send_request_async("sc2lsp/status", {"prompt": True}))
    assert "def scale_vector(v, k)" not in st["last_prompt"]
