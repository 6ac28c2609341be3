"""Repository context from the first request on (issue 14), over a real stdio session with sc2-tiny.

The workspace is three files of the standard library (queue.py, threading.py, heapq.py); the
cursor is in ``Queue.get`` where ``remaining = endtime - time()`` is being written, a few lines
below ``self.not_empty`` (a ``threading.Condition``). The cross-file definition the prompt needs is
``class Condition`` of threading.py.
"""

from __future__ import annotations

import asyncio
import queue
import shutil
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from e2e_helpers import OPTIONS, SERVER, edit, init_params, inline, open_doc, plain, status, wait_ready

pytestmark = pytest.mark.slow

STDLIB = Path(queue.__file__).parent
TYPED = "endtime - time()"
LINE = "                    remaining = endtime - time()\n"
NEEDED = "class Condition"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def workspace(tmp_path: Path) -> tuple[Path, str, int, int]:
    """(root, queue.py's text with ``TYPED`` taken out of Queue.get, cursor line, column)."""
    root = tmp_path / "stdlib3"
    root.mkdir()
    for name in ("queue.py", "threading.py", "heapq.py"):
        shutil.copy(STDLIB / name, root / name)
    text = (root / "queue.py").read_text()
    at = text.index(LINE, text.index("    def get(self, block=True, timeout=None):")) + LINE.index(TYPED)
    text = text[:at] + text[at + len(TYPED):]
    (root / "queue.py").write_text(text)
    line = text.count("\n", 0, at)
    return root, text, line, at - (text.rfind("\n", 0, at) + 1)


def context_of(prompt: str) -> str:
    return prompt[: prompt.index("<fim_prefix>")]


async def last_prompt(client) -> str:
    return plain(await client.protocol.send_request_async("sc2lsp/status", {"prompt": True}))["last_prompt"]


async def wait_indexed(client) -> None:
    for _ in range(600):
        ws = (await status(client))["server"]["workspaces"]
        if ws and ws[0]["indexed"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the workspace was never indexed")


async def wait_idle(client) -> dict:
    for _ in range(1200):
        st = await status(client)
        if st["worker"]["idle"]:
            return st
        await asyncio.sleep(0.05)
    raise AssertionError("the model worker never went idle")


async def type_keys(client, uri: str, line: int, col: int, keys: str, version: int) -> list[dict]:
    """Type ``keys`` one by one, asking for a completion after each; the timings of the keystrokes
    that went to the model (typing along a shown suggestion asks no model)."""
    out = []
    for i, ch in enumerate(keys):
        before = (await status(client))["totals"]["model_requests"]
        edit(client, uri, version + i + 1, ch, (line, col + i))
        await inline(client, uri, line, col + i + 1)
        st = await status(client)
        if st["totals"]["model_requests"] > before:
            out.append(dict(st["last"], prompt=await last_prompt(client), typed=keys[: i + 1]))
    return out


async def test_the_first_request_after_open_carries_the_cross_file_definition(client, tmp_path):
    """A fresh server, a document opened, one request at once: the definition is in that prompt (no
    warm-up, so it is the request's own gathering, after the workspace's scan and the document's
    preparation, which a document's first request waits for)."""
    root, text, line, col = workspace(tmp_path)
    await client.initialize_session(init_params(dict(OPTIONS), root=root))
    assert (await wait_ready(client))["state"] == "ready"
    uri = (root / "queue.py").as_uri()
    open_doc(client, uri, text)
    await inline(client, uri, line, col)
    ctx = context_of(await last_prompt(client))
    st = await status(client)
    assert "<file_sep>threading.py\n" in ctx and NEEDED in ctx, (ctx, {k: st["last"].get(k) for k in ("context_files", "context_ms", "context_complete", "prompt_tokens")})


async def test_the_workspace_folder_is_indexed_before_a_document_is_opened(client, tmp_path):
    """The folder's scan starts at ``initialized``, while the model loads, not at the first
    didOpen: an editor restoring its tabs sends the first request right after opening them, and
    that request waits for the scan (in an 8,577-file folder ~1.6 s here)."""
    root, text, line, col = workspace(tmp_path)
    await client.initialize_session(init_params(dict(OPTIONS), root=root))
    await wait_indexed(client)  # no document opened
    (ws,) = (await status(client))["server"]["workspaces"]
    assert ws["files"] == 3 and Path(ws["root"]) == root.resolve(), ws
    assert (await wait_ready(client))["state"] == "ready"
    uri = (root / "queue.py").as_uri()
    open_doc(client, uri, text)
    await inline(client, uri, line, col)
    assert NEEDED in context_of(await last_prompt(client))


async def test_without_repository_context_no_folder_is_indexed(client, tmp_path):
    root, text, line, col = workspace(tmp_path)
    await client.initialize_session(init_params(dict(OPTIONS, repoContext=False), root=root))
    assert (await wait_ready(client))["state"] == "ready"
    open_doc(client, (root / "queue.py").as_uri(), text)
    await inline(client, (root / "queue.py").as_uri(), line, col)
    assert (await status(client))["server"]["workspaces"] == []


async def test_a_typing_session_evaluates_a_few_tokens_per_keystroke_with_the_context_in(client, tmp_path):
    """The editor opens the file and puts the cursor in Queue.get (documentHighlight); the user
    starts typing after a moment: every keystroke, the first included, evaluates a few tokens, and
    every prompt holds the cross-file definition."""
    root, text, line, col = workspace(tmp_path)
    options = dict(OPTIONS, warmUp=True, warmDelayMs=50)
    await client.initialize_session(init_params(options, root=root))
    assert (await wait_ready(client))["state"] == "ready"
    uri = (root / "queue.py").as_uri()
    open_doc(client, uri, text)
    await client.text_document_document_highlight_async(
        types.DocumentHighlightParams(types.TextDocumentIdentifier(uri), types.Position(line, col)))
    await asyncio.sleep(0.2)
    st = await wait_idle(client)
    assert st["totals"]["warmups"] >= 1
    keys = await type_keys(client, uri, line, col, TYPED, 1)
    assert keys, "no keystroke went to the model"
    evaluated = [k["prompt_tokens_evaluated"] for k in keys]
    assert max(evaluated) <= 4, [(k["typed"], k["prompt_tokens_evaluated"]) for k in keys]
    for k in keys:
        assert NEEDED in context_of(k["prompt"]), k["typed"]


async def test_context_that_arrives_while_typing_waits_for_a_pause(client, tmp_path):
    """Typing at once after opening (the index may not be ready yet): after the first keystroke no
    keystroke evaluates more than a few tokens, whatever context arrives meanwhile; after a pause
    (a warm-up) the context is in the prompt and the next keystroke is cheap again."""
    root, text, line, col = workspace(tmp_path)
    options = dict(OPTIONS, warmUp=True, warmDelayMs=100)
    await client.initialize_session(init_params(options, root=root))
    assert (await wait_ready(client))["state"] == "ready"
    uri = (root / "queue.py").as_uri()
    open_doc(client, uri, text)
    keys = await type_keys(client, uri, line, col, TYPED[:8], 1)
    assert len(keys) >= 2
    assert max(k["prompt_tokens_evaluated"] for k in keys[1:]) <= 4, \
        [(k["typed"], k["prompt_tokens_evaluated"]) for k in keys]
    await wait_indexed(client)
    await asyncio.sleep(0.3)  # the pause: a warm-up at the cursor, with the context
    await wait_idle(client)
    rest = await type_keys(client, uri, line, col + 8, TYPED[8:], 1 + 8)
    assert rest and max(k["prompt_tokens_evaluated"] for k in rest) <= 4, \
        [(k["typed"], k["prompt_tokens_evaluated"]) for k in rest]
    assert NEEDED in context_of(rest[-1]["prompt"])


async def test_sc2lsp_context_shows_what_the_warm_server_puts_in_the_prompt(client, tmp_path, capsys):
    """``sc2lsp context`` at the cursor prints the blocks a warm server's prompt holds there."""
    import json

    from sc2lsp.cli import main

    root, text, line, col = workspace(tmp_path)
    options = dict(OPTIONS, warmUp=True, warmDelayMs=50)
    await client.initialize_session(init_params(options, root=root))
    assert (await wait_ready(client))["state"] == "ready"
    uri = (root / "queue.py").as_uri()
    open_doc(client, uri, text)
    await client.text_document_document_highlight_async(
        types.DocumentHighlightParams(types.TextDocumentIdentifier(uri), types.Position(line, col)))
    await asyncio.sleep(0.2)
    await wait_idle(client)
    await inline(client, uri, line, col)
    served = context_of(await last_prompt(client))

    assert main(["context", str(root / "queue.py"), "--line", str(line + 1), "--col", str(col + 1),
                 "--root", str(root), "--model", OPTIONS["model"], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["skipped"] == {}
    shown = "".join(f"<file_sep>{b['path']}\n{b['code']}" for b in out["blocks"])
    assert served == f"<repo_name>{root.name}{shown}<file_sep>"
    assert NEEDED in shown
