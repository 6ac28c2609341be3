"""``sc2lsp serve --tcp HOST:PORT``: the same server on a loopback socket."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import pytest

from e2e_helpers import GEOMETRY, OPTIONS, SERVER

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    def __init__(self, port: int):
        for _ in range(200):
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("server did not listen")
        self.buf = b""

    def send(self, msg: dict) -> None:
        body = json.dumps(msg).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def recv(self) -> dict:
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        body, self.buf = self.buf[:n], self.buf[n:]
        return json.loads(body)

    def request(self, msg_id: int, method: str, params) -> dict:
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        while True:
            msg = self.recv()
            if msg.get("id") == msg_id and "method" not in msg:
                return msg


def test_tcp(model_path):
    port = free_port()
    proc = subprocess.Popen(SERVER + ["--tcp", f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = Conn(port)
        init = c.request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {},
                                           "initializationOptions": OPTIONS})
        assert "inlineCompletionProvider" in init["result"]["capabilities"]
        c.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        uri = GEOMETRY.as_uri()
        c.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": GEOMETRY.read_text()}}})
        for i in range(2, 400):
            st = c.request(i, "sc2lsp/status", {})["result"]
            if st["state"] != "loading":
                break
            time.sleep(0.05)
        assert st["state"] == "ready"
        r = c.request(500, "textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": 13, "character": 15}, "context": {"triggerKind": 1}})
        assert "result" in r and isinstance(r["result"]["items"], list)
        assert c.request(501, "sc2lsp/status", {})["result"]["last"]["generated_tokens"] > 0
        c.request(502, "shutdown", None)
        c.send({"jsonrpc": "2.0", "method": "exit"})
        c.sock.settimeout(20)
        assert c.sock.recv(65536) == b""  # exit ends this client's session: its connection closes
        time.sleep(0.2)
        assert proc.poll() is None  # and the server keeps listening for the next client
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly
        assert proc.wait(timeout=20) == 0
    finally:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
