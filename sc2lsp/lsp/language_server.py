"""``Sc2Server``: the language server's state, shared by the features.

The handlers live in ``sc2lsp/lsp/features/`` (one module per feature, each with a
``register(server)`` that registers its module-level handlers; ``server.create_server``
assembles them); this module holds only what they share: the settings, the open documents, the engine, the workspaces, messages to the user, and
the negotiated position encoding. ``workspaces`` (``sc2lsp.workspace.workspaces.Workspaces``)
owns the workspace folders, the URI -> workspace-relative path mapping and the repository indexes,
and is the engine's ``context_fn``.

This package is the only one that knows LSP: requests become ``engine.Cursor`` values and
``engine.Suggestion`` values become protocol items in the features. The model runs on the
engine's worker thread; handlers are coroutines on the event loop that await its futures, so a
``$/cancelRequest`` or a newer request never waits for the model.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from .. import __version__
from ..attribution.provider import AttributionProvider
from ..config import Settings
from ..engine import Engine
from ..workspace.workspaces import Workspaces
from .documents import Document, Documents, read_document
from .params import RequestFailed
from .protocol import Sc2Protocol, is_parse_error

log = logging.getLogger("sc2lsp.lsp")

PULL_HINT = "(VS Code: 'sc2lsp: Pull model')"
_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16", "utf-32": "utf-32"}


class Sc2Server(LanguageServer):
    def __init__(self, base: Settings | None = None, engine_factory=Engine):
        super().__init__("sc2lsp", __version__, protocol_cls=Sc2Protocol)
        self.base_settings = base or Settings()
        self.settings = self.base_settings
        self.docs = Documents()
        #: folders, path mapping, repository indexes; the engine's context comes from it
        self.workspaces = Workspaces(self._indexable_documents)
        self.workspaces.enabled = self.settings.repo_context
        self.workspaces.started = False  # no index is started before ``initialized``
        self.engine: Engine = engine_factory(self.settings, notify=self.notify_user, context_fn=self.workspaces.context)
        self.workspaces.count = lambda text: self.engine.count_tokens(text)  # opened documents are prepared with it
        self.warm_handles: dict[str, asyncio.TimerHandle] = {}  #: uri -> pending warm-up (features.sync)
        self.event_loop: asyncio.AbstractEventLoop | None = None  #: set by initialize
        self.pending_messages: list[tuple[str, str]] = []  #: messages from before ``initialized``
        self.is_initialized = False
        self.last_cursor: dict[str, int] = {}  #: uri -> the last known cursor offset
        self.attribution = AttributionProvider()
        #: the last suggestion the editor reported accepted: {"uri", "range", "text"}
        self.last_accepted: dict | None = None
        self.pulling = False  #: a model download is running (features.models)

    # ---------------------------------------------------------------- messages to the user

    def notify_user(self, level: str, message: str) -> None:
        """Show a message; safe from any thread (the engine reports from its worker)."""
        if "sc2lsp models pull" in message and PULL_HINT not in message:
            message = f"{message} {PULL_HINT}"
        if not self.is_initialized or self.event_loop is None:
            self.pending_messages.append((level, message))
            return
        self.event_loop.call_soon_threadsafe(self.show_user, level, message)

    def show_user(self, level: str, message: str) -> None:
        kind = {"error": types.MessageType.Error, "warning": types.MessageType.Warning}.get(level, types.MessageType.Info)
        log.log(logging.ERROR if level == "error" else logging.WARNING, "%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def report_server_error(self, error: Exception, source: Any) -> None:
        if is_parse_error(error):
            self.protocol.report_parse_error(error)
            return
        chain, e = [], error
        while e is not None and len(chain) < 8:  # pygls wraps the handler's error
            chain.append(e)
            e = e.__cause__ or e.__context__
        cause = next((e for e in chain if isinstance(e, (RequestFailed, JsonRpcInvalidParams))), error)
        name = getattr(source, "__name__", source)
        if isinstance(cause, RequestFailed):  # expected ("no suggestion accepted yet"): the client was told
            log.info("request failed (%s): %s", name, error)
            return
        if isinstance(cause, JsonRpcInvalidParams):  # the client's mistake, answered with the reason
            log.warning("invalid params (%s): %s", name, error)
            return
        log.error("server error (%s): %s", name, error)

    # ---------------------------------------------------------------- documents

    def read_unopened(self, uri: str) -> tuple[Document | None, str | None]:
        """A document that is not open, read from disk only when the file-access policy allows it
        (a kept file inside a workspace folder): never ``/etc/passwd`` because a client named it."""
        v = self.workspaces.verdict(uri)
        if not v.readable:
            why = v.reason or "outside every workspace folder"
            return None, f"{uri} is not open and the server does not read it ({why})"
        return read_document(uri)

    def _indexable_documents(self):
        """(uri, text, language) of the open documents the repository index may see."""
        return [(d.uri, d.text, d.language_id) for d in self.docs if d.completable is None]

    @property
    def encoding(self) -> str:
        """The negotiated position encoding ("utf-16" unless the client chose another)."""
        enc = self.protocol._workspace.position_encoding if self.protocol._workspace else "utf-16"
        return _ENCODINGS.get(str(getattr(enc, "value", enc)), "utf-16")
