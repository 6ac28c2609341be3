"""``initialize`` (settings from ``initializationOptions``, the workspace folders), ``initialized``
(queued messages are shown, the model starts loading, the folders' indexes start scanning), ``workspace/didChangeWorkspaceFolders``
and ``shutdown`` (model and workspace watchers stopped)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from lsprotocol import types

from ..documents import uri_to_path
from ..language_server import Sc2Server
from .config import apply_settings



def initialize(ls: Sc2Server, params: types.InitializeParams) -> None:
    ls.event_loop = _running_loop()
    ls.workspaces.set_folders(workspace_folders(ls))
    apply_settings(ls, params.initialization_options)


def initialized(ls: Sc2Server, params: types.InitializedParams) -> None:
    ls.event_loop = _running_loop() or ls.event_loop
    ls.is_initialized = True
    ls.workspaces.started = True
    for level, message in ls.pending_messages:
        ls.show_user(level, message)
    ls.pending_messages.clear()
    if ls.engine.model_state == "not loaded":
        ls.engine.start()
    ls.workspaces.start()  # the folders' scans run while the model loads
    threading.Thread(target=_prime_converter, args=(ls,), name="sc2lsp-prime", daemon=True).start()
    ls.stats.start()  # the statistics writer's thread, not started by the first suggestion shown


def _prime_converter(ls: Sc2Server) -> None:
    """lsprotocol's converter builds the (un)structuring code of a message type on its first use:
    ~10 ms for an inline completion request and ~5 ms for its answer here (3x that under load), which
    the first suggestion after a (re)start would otherwise pay. Built while the model loads."""
    try:
        pos = {"line": 0, "character": 0}
        ls.protocol.structure_message({"jsonrpc": "2.0", "id": 0, "method": types.TEXT_DOCUMENT_INLINE_COMPLETION,
                                       "params": {"textDocument": {"uri": "file:///x"}, "position": pos,
                                                  "context": {"triggerKind": 1}}})
        item = types.InlineCompletionItem(insert_text="x", range=types.Range(types.Position(0, 0), types.Position(0, 0)),
                                          command=types.Command("t", "c", arguments=["u", {"start": pos}, "x"]))
        ls.protocol._converter.unstructure(types.InlineCompletionResponse(id=0, result=types.InlineCompletionList([item])))
    except Exception:  # only a head start: the first request builds what is missing
        logging.getLogger(__name__).debug("priming the LSP converter failed", exc_info=True)


def did_change_workspace_folders(ls: Sc2Server, params: types.DidChangeWorkspaceFoldersParams) -> None:
    # pygls has already updated its workspace (its built-in handler runs first)
    if ls.workspaces.set_folders(workspace_folders(ls)):
        ls.engine.context.forget()  # a removed folder's files leave the prompts (and its index stops)
    ls.workspaces.start()


def workspace_folders(ls: Sc2Server) -> list[tuple[str, str | None]]:
    """The client's workspace folders as (uri, name), else its root path (name: its basename)."""
    ws = ls.protocol._workspace
    if ws is None:
        return []
    folders = [(f.uri, f.name) for f in ws.folders.values() if uri_to_path(f.uri) is not None]
    if not folders and ws.root_path:
        folders = [(ws.root_path, None)]
    return folders


def shutdown(ls: Sc2Server, params: Any = None) -> None:
    for handle in ls.warm_handles.values():
        handle.cancel()
    ls.engine.close()
    ls.workspaces.stop()
    ls.stats.flush(timeout=1.0)


def register(server: Sc2Server) -> None:
    server.feature(types.INITIALIZE)(initialize)
    server.feature(types.INITIALIZED)(initialized)
    server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(did_change_workspace_folders)
    server.feature(types.SHUTDOWN)(shutdown)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
