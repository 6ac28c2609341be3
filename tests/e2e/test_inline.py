"""Inline completion over a real stdio LSP session against the embedded model (pytest-lsp)."""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from e2e_helpers import GEOMETRY, SERVER, edit, init_params, inline, items_of, open_doc, status, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

URI = GEOMETRY.as_uri()
TEXT = GEOMETRY.read_text()
RETURN_LINE = 13  # "        return " in distance(), 0-based
RETURN_COL = 15


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def client(lsp_client: LanguageClient, model_path):
    result = await lsp_client.initialize_session(init_params())
    lsp_client.init_result = result
    st = await wait_ready(lsp_client)
    assert st["state"] == "ready", st
    open_doc(lsp_client, URI, TEXT)
    yield
    await lsp_client.shutdown_session()


async def test_capabilities(client):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert caps.position_encoding == types.PositionEncodingKind.Utf16
    sync = caps.text_document_sync
    assert getattr(sync, "change", sync) == types.TextDocumentSyncKind.Incremental
    assert caps.workspace.workspace_folders.supported


async def test_inline_completion_and_status(client):
    items = items_of(await inline(client, URI, RETURN_LINE, RETURN_COL))
    assert len(items) == 1, items
    item = items[0]
    assert item.insert_text.strip()
    assert "\n" not in item.insert_text.rstrip("\n") or True  # multi-line allowed at line end
    pos = types.Position(RETURN_LINE, RETURN_COL)
    assert item.range == types.Range(pos, pos)
    st = await status(client)
    last = st["last"]
    assert st["state"] == "ready" and st["model_path"].endswith(".gguf") and st["device"] == "cpu"
    assert last["source"] == "model" and last["prompt_tokens"] > 50 and last["generated_tokens"] > 0
    assert last["prompt_ms"] > 0 and last["total_ms"] >= last["prompt_ms"]
    assert st["server"]["workspace_folders"] == [GEOMETRY.parent.as_uri()]


async def test_typing_what_the_suggestion_says_needs_no_model_call(client):
    # a place where the model suggests at least three characters on the cursor's line
    uri = URI + "#along"  # its own copy, so edits do not disturb other tests
    text = TEXT.replace("        return \n", "        return math.sqrt(\n", 1)
    open_doc(client, uri, text)
    line, col, shown = None, None, ""
    for line, col in [(RETURN_LINE, RETURN_COL + len("math.sqrt(")), (RETURN_LINE, RETURN_COL + len("math.")),
                      (RETURN_LINE, RETURN_COL)]:
        items = items_of(await inline(client, uri, line, col))
        shown = items[0].insert_text if items else ""
        if len(shown.split("\n")[0]) >= 3:
            break
    chars = shown.split("\n")[0][:2]
    assert len(shown.split("\n")[0]) >= 3, shown
    before = (await status(client))["totals"]
    start = col
    for version, ch in enumerate(chars, start=2):  # type the first characters of the ghost text
        edit(client, uri, version, ch, (line, col))
        col += 1
        items = items_of(await inline(client, uri, line, col))
        assert items and items[0].insert_text == shown[col - start:], (shown, items)
        assert (await status(client))["last"]["source"] == "typed_along"
    after = (await status(client))["totals"]
    assert after["model_requests"] == before["model_requests"]
    assert after["typed_along"] == before["typed_along"] + len(chars)
    # typing something else asks the model again, with the prompt cached up to the cursor
    edit(client, uri, 9, "#", (line, col))
    await inline(client, uri, line, col + 1)
    st = await status(client)
    assert st["totals"]["model_requests"] == before["model_requests"] + 1
    assert st["last"]["source"] == "model" and st["last"]["prompt_tokens_evaluated"] <= 3


async def test_ten_rapid_requests_only_the_last_is_answered(client):
    # a long document and ten different places: each request needs its own prompt evaluation
    big = "\n\n".join(TEXT.replace("Point", f"Point{i}") for i in range(12))
    uri = URI + "#rapid"
    open_doc(client, uri, big)
    lines = big.split("\n")
    spots = [i for i, line in enumerate(lines) if line.strip() == "return"][:11] or [
        i for i, line in enumerate(lines) if line.strip().startswith("return")
    ][:11]
    assert len(spots) >= 11
    t0 = time.perf_counter()
    await inline(client, uri, spots[10], len(lines[spots[10]]))  # one cold request alone, for scale
    single = time.perf_counter() - t0  # (the deepest place: the longest prompt)
    before = await status(client)
    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(inline(client, uri, ln, len(lines[ln]))) for ln in spots[:10]]
    done_at = {}
    for i, task in enumerate(tasks):
        task.add_done_callback(lambda _t, i=i: done_at.setdefault(i, time.perf_counter() - t0))
    results = [items_of(r) for r in await asyncio.gather(*tasks)]
    burst = time.perf_counter() - t0
    after = await status(client)
    assert after["last"]["source"] == "model" and after["last"]["stop_reason"] != "cancelled"
    assert all(r == [] for r in results[:9]), results
    assert all(done_at[i] <= done_at[9] for i in range(9))
    assert after["totals"]["model_requests"] - before["totals"]["model_requests"] == 10
    assert after["totals"]["cancelled"] - before["totals"]["cancelled"] == 9
    # ten requests cost about one (plus the stop of the one that was running), not ten; the bound
    # is loose because other processes may share the CPU (speed targets live in bench/latency.py)
    assert burst < 6 * single + 2.0, (burst, single, done_at, after["last"])


async def test_completion_fallback_follows_the_setting(client):
    params = types.CompletionParams(text_document=types.TextDocumentIdentifier(URI),
                                    position=types.Position(RETURN_LINE, RETURN_COL))
    # this client supports inline completion, so by default the fallback stays quiet
    assert items_of(await client.text_document_completion_async(params)) == []
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"sc2lsp": {"completionFallback": "always"}}))
    await asyncio.sleep(0.1)
    result = await client.text_document_completion_async(params)
    items = items_of(result)
    inline_items = items_of(await inline(client, URI, RETURN_LINE, RETURN_COL))
    assert len(items) == 1 and items[0].text_edit.new_text == inline_items[0].insert_text
    assert result.is_incomplete
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"sc2lsp": {"completionFallback": "auto"}}))


async def test_utf16_positions_and_edits(client):
    uri = URI.replace("geometry.py", "unicode.py")
    text = "s = '😀漢字'\r\nt = 'a\x0cb'\nu = 1\n"
    open_doc(client, uri, text)
    # insert after the emoji: 'x = ' is 5 UTF-16 units, the emoji 2 more
    edit(client, uri, 2, "Z", (0, 7))
    edit(client, uri, 3, "é", (0, 10))  # after 漢字 and Z: 7 + 1 + 2
    edit(client, uri, 4, "E", (0, 5), (0, 7))  # replace the emoji itself
    edit(client, uri, 5, "v = 2\n", (2, 0))  # line 2 is "u = 1": a form feed does not end a line in LSP
    doc = (await status(client, uri))["document"]
    assert doc["text"] == "s = 'EZ漢字é'\r\nt = 'a\x0cb'\nv = 2\nu = 1\n"
    assert doc["version"] == 5
    # a completion after non-BMP text answers at the same UTF-16 position
    edit(client, uri, 6, "😀 = ", (3, 0))
    items = items_of(await inline(client, uri, 3, 5))
    for item in items:
        assert item.range.start == types.Position(3, 5)


async def test_warm_up_where_the_cursor_rests(client):
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"warmUp": True, "warmDelayMs": 50}))
    await asyncio.sleep(0.1)
    try:
        before = (await status(client))["totals"]["warmups"]
        spot = types.Position(21, 4)  # the blank line in centroid(), not asked about before
        await client.text_document_document_highlight_async(
            types.DocumentHighlightParams(types.TextDocumentIdentifier(URI), spot))
        for _ in range(600):
            st = await status(client)
            if st["totals"]["warmups"] > before and st["worker"]["idle"]:
                break
            await asyncio.sleep(0.05)
        assert (await status(client))["totals"]["warmups"] == before + 1
        await inline(client, URI, spot.line, spot.character)
        last = (await status(client))["last"]
        assert last["source"] == "model" and last["prompt_tokens_evaluated"] <= 1, last
    finally:
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"warmUp": False}))
