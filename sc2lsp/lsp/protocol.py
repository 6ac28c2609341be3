"""pygls protocol with sc2lsp's document sync and answers to malformed messages.

* Document sync (didOpen, didChange, didClose) goes only to the handlers of ``features/sync.py``
  (the server's own ``Documents``, LSP line rules, see ``documents.py``), not to pygls's workspace.
* Over TCP with a token (``tcp.py``): nothing but ``initialize`` is handled until an
  ``initialize`` carried the right ``initializationOptions.token``; a wrong token gets an error
  and the connection is closed. ``exit`` ends only this connection's session.
* A request whose params do not match the protocol (a string for a line number, a missing
  field) gets an ``InvalidParams`` error response; pygls would only log it and leave the
  client waiting forever. Unparsable JSON gets a ``ParseError`` response with a null id, as
  JSON-RPC 2.0 says.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import (JsonRpcInvalidParams, JsonRpcInvalidRequest, JsonRpcParseError,
                              JsonRpcServerNotInitialized)
from pygls.protocol import LanguageServerProtocol, lsp_method

from .params import RequestFailed


if TYPE_CHECKING:
    from .language_server import Sc2Server

log = logging.getLogger(__name__)


def _not_pygls_deserialize_error(record: logging.LogRecord) -> bool:
    """pygls logs every message it cannot structure at ERROR with a traceback in the text;
    ``Sc2Protocol.structure_message`` answers it and logs one warning line instead, so a client
    sending bad positions (a negative line) does not fill the log with tracebacks. Likewise the
    traceback pygls logs for a request that ends in an expected error (``RequestFailed``: "no
    suggestion accepted yet", a range outside the document): the client gets the message, and
    ``Sc2Server.report_server_error`` logs it in one line. And a broken pipe when the editor quit
    without a shutdown (one traceback per pending answer)."""
    msg = record.msg if isinstance(record.msg, str) else ""
    if msg.startswith("Unable to deserialize message"):
        return False
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, (BrokenPipeError, ConnectionResetError)):  # the editor is gone (Neovim's :qa!)
        log.debug("the client closed the connection: %s", exc)
        return False
    if msg.startswith("Exception occurred for message") and exc is not None:
        return not isinstance(exc, (RequestFailed, JsonRpcInvalidParams))
    return True


logging.getLogger("pygls.protocol.json_rpc").addFilter(_not_pygls_deserialize_error)


class _Rejected:
    """Stands in for a message that was already answered with an error."""


class Sc2Protocol(LanguageServerProtocol):
    _server: "Sc2Server"

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except Exception as exc:
            msg_id = data.get("id") if isinstance(data, dict) else None
            if msg_id is not None and "method" in data:
                log.warning("invalid params for %s (id %s): %s", data.get("method"), msg_id, exc.__cause__ or exc)
                error = JsonRpcInvalidParams(f"invalid params for {data.get('method')}: {exc.__cause__ or exc}")
                self._send_response(msg_id, error=error.to_response_error())
            else:
                log.warning("dropping a malformed message: %s", exc.__cause__ or exc)
            return _Rejected()

    def handle_message(self, message):
        if isinstance(message, _Rejected):
            return
        if not hasattr(message, "jsonrpc"):  # valid JSON, but not a JSON-RPC message
            if isinstance(message, dict) and message.get("id") is not None:
                self._send_response(message["id"], error=JsonRpcInvalidRequest("not a JSON-RPC 2.0 message").to_response_error())
            else:
                log.warning("dropping a message that is not JSON-RPC: %.200r", message)
            return
        if getattr(self._server, "required_token", None) is not None and not self._server_authenticated(message):
            return
        return super().handle_message(message)

    def _server_authenticated(self, message) -> bool:
        """The TCP token gate: False when ``message`` must not be handled (it was answered or dropped)."""
        from .tcp import token_ok

        srv = self._server
        if getattr(srv, "authenticated", False):
            return True
        method, msg_id = getattr(message, "method", None), getattr(message, "id", None)
        if method == types.INITIALIZE:
            options = getattr(message.params, "initialization_options", None)
            if token_ok(srv.required_token, options):
                srv.authenticated = True
                if isinstance(options, dict):
                    options.pop("token", None)
                return True
            log.warning("initialize with a wrong or missing token: closing the connection")
            self._send_response(msg_id, error=JsonRpcInvalidParams("wrong or missing initializationOptions.token")
                                .to_response_error())
            self._end_session()
            return False
        if msg_id is not None and method is not None:
            self._send_response(msg_id, error=JsonRpcServerNotInitialized("initialize with the token first")
                                .to_response_error())
        return False

    def _end_session(self) -> None:
        stop = getattr(self._server, "_stop_event", None)
        if stop is not None:
            stop.set()
        if self.writer is not None:
            res = self.writer.close()
            if hasattr(res, "__await__"):
                asyncio.ensure_future(res)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args):
        """Over TCP, ``exit`` ends this connection's session only; over stdio, the process."""
        if getattr(self._server, "tcp_session", False):
            self._end_session()
            return
        yield from super().lsp_exit(*args)

    def report_parse_error(self, exc: Exception) -> None:
        """Called for a body that is not JSON at all."""
        from pygls.protocol.json_rpc import ResponseErrorMessage

        log.warning("unparsable message: %s", exc)
        self._send_data(ResponseErrorMessage(id=None, error=JsonRpcParseError(f"parse error: {exc}").to_response_error()))

    # ---------------------------------------------------------------- document sync

    # pygls's built-in handlers would also apply the change to pygls's workspace (str.splitlines
    # line rules); these only call the handlers registered by features/sync.py.

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


def is_parse_error(exc: Exception) -> bool:
    return isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError))
