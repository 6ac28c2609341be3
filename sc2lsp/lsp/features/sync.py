"""Document sync and warm-up scheduling.

didOpen/didChange/didClose (``protocol.Sc2Protocol`` calls only these, not pygls's workspace) keep ``ls.docs`` (LSP line
rules, see ``documents.py``) and tell the workspace index; a document's prompt is warmed on
didOpen, when the document has been still for ``warmDelayMs`` after an edit, and where the cursor
rests, as seen through ``textDocument/documentHighlight`` (editors send it on every cursor move;
it answers nothing).
"""

from __future__ import annotations

import logging

from lsprotocol import types

from ...engine import Cursor
from ..documents import Document
from ..language_server import Sc2Server


log = logging.getLogger("sc2lsp.lsp")


def did_open(ls: Sc2Server, params: types.DidOpenTextDocumentParams) -> None:
    td = params.text_document
    doc = ls.docs.open(td.uri, td.text, td.version, td.language_id)
    doc.excluded = ls.workspaces.verdict(td.uri).reason  # a secret or ignored file: kept in sync, never used
    doc.line_starts()  # the line index now: the first request's position would build it (0.5-7 ms measured)
    if doc.completable is None:
        ls.workspaces.did_open(td.uri, td.text, td.language_id)
    schedule_warm(ls, doc, ls.last_cursor.get(td.uri, 0), delay=0.0)


def did_change(ls: Sc2Server, params: types.DidChangeTextDocumentParams) -> None:
    doc = ls.docs.get(params.text_document.uri)
    if doc is None:
        log.warning("didChange for a document that is not open: %s", params.text_document.uri)
        return
    end = None
    for change in params.content_changes:
        rng = getattr(change, "range", None)
        if rng is None:
            end = doc.apply_change(change.text)
        else:
            end = doc.apply_change(change.text, (rng.start.line, rng.start.character),
                                   (rng.end.line, rng.end.character), ls.encoding)
    doc.version = params.text_document.version
    ls.workspaces.did_change(doc.uri)
    if end is not None:
        schedule_warm(ls, doc, end, delay=ls.settings.warm_delay_ms / 1000)


def did_close(ls: Sc2Server, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.workspaces.did_close(uri)
    ls.docs.close(uri)
    handle = ls.warm_handles.pop(uri, None)
    if handle is not None:
        handle.cancel()


def document_highlight(ls: Sc2Server, params: types.DocumentHighlightParams) -> None:
    """Editors ask for highlights whenever the cursor moves (VS Code does by default): the only
    cursor signal LSP has. No highlights from us; the prompt there gets warmed."""
    doc = ls.docs.get(params.text_document.uri)
    if doc is None:
        return None
    offset = doc.offset_at(params.position.line, params.position.character, ls.encoding)
    if offset is not None:
        ls.last_cursor[doc.uri] = offset
        schedule_warm(ls, doc, offset, delay=ls.settings.warm_delay_ms / 1000)
    return None


def schedule_warm(ls: Sc2Server, doc: Document, offset: int, delay: float) -> None:
    """Warm the prompt at ``offset`` once the document has been still for ``delay`` seconds."""
    if not ls.settings.warm_up or doc.completable is not None or ls.event_loop is None:
        return
    cancel_warm(ls, doc.uri)
    version = doc.version

    def fire() -> None:
        ls.warm_handles.pop(doc.uri, None)
        if ls.docs.get(doc.uri) is doc and doc.version == version:
            ls.engine.warm(cursor_for(ls, doc, min(offset, len(doc.text))))

    ls.warm_handles[doc.uri] = ls.event_loop.call_later(delay, fire)


def cancel_warm(ls: Sc2Server, uri: str) -> None:
    handle = ls.warm_handles.pop(uri, None)
    if handle is not None:
        handle.cancel()


def cursor_for(ls: Sc2Server, doc: Document, offset: int) -> Cursor:
    """The engine's cursor at ``offset`` of ``doc`` (path relative to its workspace folder)."""
    path, repo = ls.workspaces.locate(doc.uri)
    return Cursor(doc.uri, doc.text, offset, doc.language_id, path, repo)


def register(server: Sc2Server) -> None:
    # protocol.Sc2Protocol calls these three instead of updating pygls's workspace
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
    server.feature(types.TEXT_DOCUMENT_DOCUMENT_HIGHLIGHT)(document_highlight)
