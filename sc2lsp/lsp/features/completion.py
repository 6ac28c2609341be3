"""Completions: ``textDocument/inlineCompletion`` (registered with ``InlineCompletionOptions()``,
which is what makes pygls advertise it; one item with a zero-width range at the cursor, carrying
the ``sc2lsp.suggestionAccepted`` command) and the ``textDocument/completion`` fallback (one item
holding the suggestion; only for clients without inline completion unless ``completionFallback``
says otherwise). ``$/cancelRequest`` cancels the handler's task, which cancels the engine ticket.
"""

from __future__ import annotations

import asyncio
import logging
import time

from lsprotocol import types

from ...engine import Cursor, Suggestion
from ..language_server import Sc2Server
from ..params import advance, lsp_range
from . import stats
from .attribution import CMD_ACCEPTED
from .sync import cancel_warm, cursor_for


log = logging.getLogger("sc2lsp.lsp")
#: The longest a request waits for its workspace's scan and its document's preparation (only
#: right after start or didOpen; such a request evaluates its whole prompt anyway).
FIRST_REQUEST_WAIT_S = 2.0


def document_cursor(ls: Sc2Server, uri: str, position: types.Position) -> tuple[Cursor | None, str]:
    """The engine's cursor for a request, or (None, why there is no completion)."""
    doc = ls.docs.get(uri)
    if doc is None:
        doc, why = ls.read_unopened(uri)
        if doc is None:
            return None, why or "unknown document"
    why = doc.completable
    if why is not None:
        return None, f"{uri}: {why}"
    offset = doc.offset_at(position.line, position.character, ls.encoding)
    if offset is None:
        return None, f"position {position.line}:{position.character} is outside {uri}"
    ls.last_cursor[uri] = offset
    return cursor_for(ls, doc, offset), ""


async def suggest(ls: Sc2Server, uri: str, position: types.Position) -> Suggestion | None:
    cur, why = document_cursor(ls, uri, position)
    if cur is None:
        log.info("no completion: %s", why)
        return None
    cancel_warm(ls, uri)
    if not ls.workspaces.settled(uri):  # just opened: the index is being built or the document prepared
        await asyncio.to_thread(ls.workspaces.wait_settled, uri, FIRST_REQUEST_WAIT_S)
    ticket = ls.engine.complete(cur)
    try:
        return await asyncio.wrap_future(ticket.future)
    except asyncio.CancelledError:  # $/cancelRequest
        ticket.cancel()
        raise


def wants_completion_fallback(ls: Sc2Server) -> bool:
    mode = ls.settings.completion_fallback
    if mode != "auto":
        return mode == "always"
    td = ls.client_capabilities.text_document if ls.client_capabilities else None
    return getattr(td, "inline_completion", None) is None


async def inline_completion(ls: Sc2Server, params: types.InlineCompletionParams) -> types.InlineCompletionList | None:
    t0 = time.perf_counter()
    s = await suggest(ls, params.text_document.uri, params.position)
    if s is None or not s.text:
        return types.InlineCompletionList(items=[])
    stats.shown(ls, params.text_document.uri, s.text, s.source, (time.perf_counter() - t0) * 1000)
    rng = types.Range(start=params.position, end=params.position)
    start = (params.position.line, params.position.character)
    accepted = lsp_range(start, advance(start, s.text, ls.encoding))
    command = types.Command(title="sc2lsp: suggestion accepted", command=CMD_ACCEPTED,
                            arguments=[params.text_document.uri, accepted, s.text])
    return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=s.text, range=rng,
                                                                        command=command)])


async def completion(ls: Sc2Server, params: types.CompletionParams) -> types.CompletionList:
    empty = types.CompletionList(is_incomplete=True, items=[])
    if not wants_completion_fallback(ls):
        return empty
    s = await suggest(ls, params.text_document.uri, params.position)
    if s is None or not s.text:
        return empty
    first = s.text.strip().splitlines()[0] if s.text.strip() else s.text
    item = types.CompletionItem(
        label=first[:60] + ("…" if len(first) > 60 or "\n" in s.text.strip() else ""),
        kind=types.CompletionItemKind.Text,
        detail="sc2lsp",
        filter_text="",
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(start=params.position, end=params.position), new_text=s.text),
    )
    return types.CompletionList(is_incomplete=True, items=[item])


def register(server: Sc2Server) -> None:
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(inline_completion)
    server.feature(types.TEXT_DOCUMENT_COMPLETION,
                   types.CompletionOptions(trigger_characters=[".", "(", " "]))(completion)
