"""``sc2lsp serve --tcp HOST:PORT``: one fresh server session per connection, with a token off loopback.

Rules (SECURITY.md):

* Loopback (``127.0.0.0/8``, ``::1``, ``localhost``) is the default and needs no token. Any other
  address needs a token, from ``$SC2LSP_TCP_TOKEN`` or a file only its owner can read (mode
  0600); without one the command refuses to start. When a token is configured, the client
  sends it as ``initializationOptions.token``; until ``initialize`` carried the right token
  every request gets an error and nothing else is handled, and a wrong token closes the
  connection.
* Every connection gets its own session: its own documents, workspace index, settings and
  model (``create_server`` per connection), so no client ever sees another client's data. At
  most ``max_sessions`` run at once (default 1: one model in memory); a connection beyond that
  is told so and closed, and the running session is untouched.
* A connection that has not completed ``initialize`` within ``init_timeout`` seconds (30) is
  closed, so an idle or stalled client cannot hold the session slot.
* A client that disconnects, or sends ``exit``, ends only its own session (its model and
  watchers are closed); the listener keeps accepting.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Callable

from ..errors import UserError

log = logging.getLogger(__name__)

TOKEN_ENV = "SC2LSP_TCP_TOKEN"


def is_loopback(host: str) -> bool:
    """Is ``host`` a loopback address (a name other than ``localhost`` is not trusted to be one)?"""
    h = host.strip("[]")
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def read_token_file(path: str | Path) -> str:
    """The token in ``path``, which must be a regular file only its owner may read or write."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise UserError(f"cannot read the token file {p}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"the token file {p} is not a regular file")
    if st.st_mode & 0o077:
        raise UserError(f"the token file {p} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
                        f"chmod 600 {p}")
    token = p.read_text(encoding="utf-8", errors="replace").strip()
    if len(token) < 16:
        raise UserError(f"the token in {p} is shorter than 16 characters")
    return token


def tcp_token(host: str, token_file: str | Path | None, env: dict | None = None) -> str | None:
    """The token the server will require for ``host`` (None: none required), or a ``UserError``.

    A token from the file or the environment is required on any address; on a non-loopback
    address one is mandatory.
    """
    env = os.environ if env is None else env
    token = read_token_file(token_file) if token_file else (env.get(TOKEN_ENV) or "").strip() or None
    if token is not None and len(token) < 16:
        raise UserError(f"${TOKEN_ENV} is shorter than 16 characters")
    if token is None and not is_loopback(host):
        raise UserError(f"--tcp on {host}, which is not a loopback address, needs a token: set ${TOKEN_ENV} "
                        f"or pass --token-file FILE (mode 0600); clients send it as initializationOptions.token")
    return token


def token_ok(expected: str | None, options) -> bool:
    if expected is None:
        return True
    given = options.get("token") if isinstance(options, dict) else getattr(options, "token", None)
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def _frame(msg: dict) -> bytes:
    body = json.dumps(msg).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def _session(make_server: Callable, token: str | None, reader, writer, init_timeout: float) -> None:
    from pygls.io_ import run_async

    server = make_server()
    server.tcp_session = True
    server.required_token = token
    stop = server._stop_event = threading.Event()
    server.protocol.set_writer(writer)

    def not_initialized() -> None:
        if not getattr(server, "is_initialized", False) and not stop.is_set():
            log.warning("closing a connection that did not initialize within %.0f s", init_timeout)
            stop.set()
            writer.close()

    timer = asyncio.get_running_loop().call_later(init_timeout, not_initialized)
    try:
        await run_async(stop_event=stop, reader=reader, protocol=server.protocol, logger=log,
                        error_handler=server.report_server_error)
    except (ConnectionError, asyncio.IncompleteReadError) as e:
        log.info("client connection ended: %s", e)
    finally:
        timer.cancel()
        stop.set()
        await asyncio.to_thread(_close_session, server)
        try:
            writer.close()
        except Exception:  # already closed by the peer
            pass


def _close_session(server) -> None:
    try:
        server.engine.close()
    finally:
        server.workspaces.stop()


def serve_tcp(host: str, port: int, make_server: Callable, *, token: str | None = None, max_sessions: int = 1,
              init_timeout: float = 30.0, ready: Callable[[int], None] | None = None) -> None:
    """Listen on ``host:port`` until interrupted; ``make_server()`` builds one session's server."""
    active: set[asyncio.Task] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(active) >= max_sessions:
            log.warning("refusing %s: %d session(s) already running", peer, len(active))
            writer.write(_frame({"jsonrpc": "2.0", "method": "window/showMessage", "params": {
                "type": 1, "message": f"sc2lsp: this server serves {max_sessions} session(s) at a time and one "
                                      f"is running; start another server or try again later"}}))
            try:
                await writer.drain()
            finally:
                writer.close()
            return
        task = asyncio.current_task()
        active.add(task)
        log.info("session for %s", peer)
        try:
            await _session(make_server, token, reader, writer, init_timeout)
        finally:
            active.discard(task)
            log.info("session for %s ended", peer)

    async def main() -> None:
        srv = await asyncio.start_server(on_connect, host, port)
        if ready is not None:
            ready(srv.sockets[0].getsockname()[1])
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())
