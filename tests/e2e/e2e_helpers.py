"""End-to-end helpers: ``sc2lsp serve`` as a subprocess over stdio, on the real embedded model.

``SC2LSP_E2E_MODEL`` may point the tests at another GGUF (default: the shipped
``models/sc2-tiny/sc2-tiny-q8_0.gguf``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lsprotocol import types

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo"
GEOMETRY = DEMO / "geometry.py"
MODEL = os.environ.get("SC2LSP_E2E_MODEL", str(ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"))
SERVER = [sys.executable, "-m", "sc2lsp.cli", "serve"]
#: One llama.cpp thread: the tiny model needs no more, and tests may share the CPU.
#: No time caps: a busy test machine must not turn a slow prompt into an empty answer.
OPTIONS = {"model": MODEL, "threads": 1, "warmUp": False, "maxPromptMs": 600_000, "maxPredictMs": 600_000}


def init_params(options: dict | None = None, inline: bool = True, root: Path = DEMO) -> types.InitializeParams:
    caps = types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities() if inline else None,
            completion=types.CompletionClientCapabilities(),
        ),
        workspace=types.WorkspaceClientCapabilities(workspace_folders=True, configuration=False),
        general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
    )
    return types.InitializeParams(
        capabilities=caps,
        root_uri=root.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        initialization_options=options if options is not None else dict(OPTIONS),
    )


def plain(obj):
    """pygls's client turns untyped results into namedtuples: back to dicts and lists."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


async def status(client, uri: str | None = None) -> dict:
    return plain(await client.protocol.send_request_async("sc2lsp/status", {"uri": uri} if uri else {}))


async def wait_ready(client, timeout: float = 60.0) -> dict:
    import asyncio
    import time

    end = time.monotonic() + timeout
    while True:
        st = await status(client)
        if st["state"] in ("ready", "failed") or time.monotonic() > end:
            return st
        await asyncio.sleep(0.05)


def open_doc(client, uri: str, text: str, language: str = "python", version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text))
    )


def edit(client, uri: str, version: int, text: str, start: tuple[int, int], end: tuple[int, int] | None = None) -> None:
    end = end or start
    rng = types.Range(types.Position(*start), types.Position(*end))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=rng, text=text)],
        )
    )


async def inline(client, uri: str, line: int, character: int):
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line, character),
        )
    )


def items_of(result) -> list:
    if result is None:
        return []
    return list(result.items) if hasattr(result, "items") else list(result)
