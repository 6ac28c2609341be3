"""``sc2lsp serve --tcp``: the same server on a socket; loopback by default, a token off loopback, one session per connection.

Real sockets on 127.0.0.1 only. The non-loopback rule is tested through the decision function
(``tcp_token``) plus a real-socket test of the token check itself (a token configured on loopback
is enforced exactly as it would be on any other address).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from e2e_helpers import GEOMETRY, OPTIONS, SERVER
from sc2lsp.errors import UserError
from sc2lsp.lsp.tcp import TOKEN_ENV, is_loopback, read_token_file, tcp_token

TOKEN = "t0ken-for-tests-0123456789abcdef"
SENTINEL = "FIRST_CLIENT_SENTINEL_9913"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    def __init__(self, port: int, timeout: float = 60):
        for _ in range(400):
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("server did not listen")
        self.buf = b""
        self.seen: list[dict] = []  #: everything received, for leak checks
        self.ids = iter(range(1, 10**6))

    def send(self, msg: dict) -> None:
        body = json.dumps(msg).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def recv(self) -> dict:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        msg = json.loads(body)
        self.seen.append(msg)
        return msg

    def request(self, method: str, params) -> dict:
        msg_id = next(self.ids)
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        while True:
            msg = self.recv()
            if msg.get("id") == msg_id and "method" not in msg:
                return msg

    def notify(self, method: str, params) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def initialize(self, options: dict) -> dict:
        r = self.request("initialize", {"processId": None, "rootUri": None, "capabilities": {},
                                        "initializationOptions": options})
        if "result" in r:
            self.notify("initialized", {})
        return r

    def closed(self, timeout: float = 10) -> bool:
        """Does the server close this connection (reading and dropping anything it still sends)?"""
        self.sock.settimeout(timeout)
        try:
            while True:
                self._fill()
        except EOFError:
            while b"\r\n\r\n" in self.buf:  # parse what arrived before the close
                try:
                    self.recv()
                except EOFError:
                    break
            return True
        except (socket.timeout, OSError):
            return False

    def close(self) -> None:
        self.sock.close()


def session(port: int, options: dict) -> tuple[Conn, dict]:
    """A connection and its ``initialize`` response, retried while the previous session still closes."""
    for _ in range(200):
        c = Conn(port)
        try:
            return c, c.initialize(options)
        except (EOFError, ConnectionError):
            c.close()
            time.sleep(0.05)
    raise AssertionError("no session accepted")


@pytest.fixture
def serve(model_path):
    procs = []

    def start(env: dict | None = None) -> tuple[subprocess.Popen, int]:
        port = free_port()
        proc = subprocess.Popen(SERVER + ["--tcp", f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, **(env or {})})
        procs.append(proc)
        return proc, port

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- the decision, without binding


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
                                        ("localhost", True), ("0.0.0.0", False), ("::", False),
                                        ("192.168.1.10", False), ("example.com", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_non_loopback_needs_a_token(tmp_path):
    with pytest.raises(UserError, match="needs a token"):
        tcp_token("0.0.0.0", None, env={})
    assert tcp_token("127.0.0.1", None, env={}) is None
    assert tcp_token("0.0.0.0", None, env={TOKEN_ENV: TOKEN}) == TOKEN
    with pytest.raises(UserError, match="shorter"):
        tcp_token("0.0.0.0", None, env={TOKEN_ENV: "short"})
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    f.chmod(0o644)
    with pytest.raises(UserError, match="chmod 600"):
        tcp_token("0.0.0.0", f, env={})
    f.chmod(0o600)
    assert read_token_file(f) == TOKEN and tcp_token("0.0.0.0", f, env={}) == TOKEN


def test_serve_refuses_a_public_address_without_token():
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: even a server without the rule could not bind it
    r = subprocess.run(SERVER + ["--tcp", "192.0.2.1:1"], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != TOKEN_ENV})
    assert r.returncode != 0 and "needs a token" in r.stderr  # refused before binding anything


# ---------------------------------------------------------------- real sockets


@pytest.mark.slow
def test_token_checked_on_initialize(serve):
    proc, port = serve({TOKEN_ENV: TOKEN})
    c = Conn(port)
    assert c.request("sc2lsp/status", {})["error"]["code"] == -32002  # nothing before initialize
    r = c.initialize(dict(OPTIONS, token="wrong-token-0123456789"))
    assert "error" in r and c.closed()
    c2, r = session(port, dict(OPTIONS))
    assert "error" in r and c2.closed()  # no token at all
    c3, r = session(port, dict(OPTIONS, token=TOKEN))
    assert "inlineCompletionProvider" in r["result"]["capabilities"]
    assert TOKEN not in json.dumps(c3.request("sc2lsp/status", {})["result"])  # never echoed back
    assert proc.poll() is None


def _wait_ready(c: Conn) -> dict:
    for _ in range(1200):
        st = c.request("sc2lsp/status", {})["result"]
        if st["state"] != "loading":
            return st
        time.sleep(0.05)
    return st


@pytest.mark.slow
def test_sessions_are_separate_and_survive_disconnects(serve, tmp_path):
    proc, port = serve()
    first = Conn(port)
    assert "result" in first.initialize(dict(OPTIONS))
    uri = (tmp_path / "a.py").as_uri()
    text = f"API = '{SENTINEL}'\n\n\ndef area(r):\n    return "
    first.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                           "text": text}})
    assert _wait_ready(first)["state"] == "ready"
    first.request("textDocument/inlineCompletion", {"textDocument": {"uri": uri}, "position": {
        "line": 4, "character": 11}, "context": {"triggerKind": 1}})
    assert SENTINEL in first.request("sc2lsp/status", {"prompt": True})["result"]["last_prompt"]

    second = Conn(port)  # while the first is connected: refused, told why, nothing of the first's
    assert second.closed()
    assert all(SENTINEL not in json.dumps(m) for m in second.seen)
    assert any("one is running" in json.dumps(m) for m in second.seen)
    assert first.request("sc2lsp/status", {"uri": uri})["result"]["document"]["text"] == text  # untouched

    first.close()  # an abrupt disconnect: the server stays up for the next client
    time.sleep(0.5)
    assert proc.poll() is None
    third, r = session(port, dict(OPTIONS))  # once the first session has closed its model
    assert "result" in r
    st = third.request("sc2lsp/status", {"prompt": True, "uri": uri})["result"]
    assert st["server"]["open_documents"] == 0 and "document" not in st
    assert not st.get("last_prompt") and SENTINEL not in json.dumps(third.seen)

    third.request("shutdown", None)  # exit ends that session only
    third.notify("exit", None)
    assert third.closed()
    time.sleep(0.3)
    assert proc.poll() is None
    fourth, r = session(port, dict(OPTIONS))
    assert "result" in r and proc.poll() is None


def test_a_client_that_never_initializes_frees_the_slot():
    """An idle connection is closed after init_timeout; then the next client gets the session."""
    import threading as _threading

    from sc2lsp.lsp.server import create_server
    from sc2lsp.lsp.tcp import serve_tcp

    port_box: list[int] = []
    t = _threading.Thread(target=serve_tcp, args=("127.0.0.1", 0, create_server),
                          kwargs={"init_timeout": 0.5, "ready": port_box.append}, daemon=True)
    t.start()
    for _ in range(200):
        if port_box:
            break
        time.sleep(0.02)
    idle = Conn(port_box[0])  # connects, sends nothing
    assert idle.closed(timeout=10)
    c, r = session(port_box[0], {"warmUp": False, "model": "/nonexistent.gguf"})
    assert "result" in r
    c.close()


# ---------------------------------------------------------------- a whole session over the socket


@pytest.mark.slow
def test_completion_over_tcp_and_clean_stop(serve):
    proc, port = serve()
    c = Conn(port)
    init = c.initialize(OPTIONS)
    assert "inlineCompletionProvider" in init["result"]["capabilities"]
    uri = GEOMETRY.as_uri()
    c.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                       "text": GEOMETRY.read_text()}})
    for _ in range(400):
        st = c.request("sc2lsp/status", {})["result"]
        if st["state"] != "loading":
            break
        time.sleep(0.05)
    assert st["state"] == "ready"
    r = c.request("textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": {"line": 13, "character": 15}, "context": {"triggerKind": 1}})
    assert "result" in r and isinstance(r["result"]["items"], list)
    assert c.request("sc2lsp/status", {})["result"]["last"]["generated_tokens"] > 0
    c.request("shutdown", None)
    c.notify("exit", None)
    assert c.closed(timeout=20)  # exit ends this client's session: its connection closes
    time.sleep(0.2)
    assert proc.poll() is None  # and the server keeps listening for the next client
    proc.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly
    assert proc.wait(timeout=20) == 0
