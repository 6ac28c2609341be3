"""``initialize`` (settings from ``initializationOptions``, the workspace folders), ``initialized``
(queued messages are shown, the model starts loading), ``workspace/didChangeWorkspaceFolders``
and ``shutdown`` (model and workspace watchers stopped)."""

from __future__ import annotations

import asyncio
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


def did_change_workspace_folders(ls: Sc2Server, params: types.DidChangeWorkspaceFoldersParams) -> None:
    # pygls has already updated its workspace (its built-in handler runs first)
    ls.workspaces.set_folders(workspace_folders(ls))


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
