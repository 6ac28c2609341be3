"""Real servers on 127.0.0.1 for the remote-backend tests.

* ``LlamaCppPythonServer``: ``llama_cpp.server`` (llama-cpp-python's OpenAI-compatible
  server, the ``server`` extra of the same wheel) serving the embedded sc2-tiny GGUF.
* ``ScriptedServer``: a small ``http.server`` whose behaviour the test switches (``mode``): a
  good OpenAI-style stream, 500s, garbage, a model list without our model, a stream that closes
  mid-generation, a slow first token, or a plain HTTP proxy (it records what it was sent).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sc2lsp.backends.llama_cpp import LlamaSettings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
import pytest  # noqa: E402

from bench import llama_server_ref  # noqa: E402
from bench.llama_server_ref import flash_attn_for  # noqa: E402

GGUF = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
#: the marks of a test that runs llama.cpp's own llama-server (built by `make llama-server`)
NEEDS_LLAMA_SERVER = [
    pytest.mark.slow,
    pytest.mark.skipif(not llama_server_ref.available(),
                       reason=f"llama-server not built: {llama_server_ref.BUILD_HINT}"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaCppPythonServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 (one thread, sc2-tiny served as ``sc2-tiny``)."""

    def __init__(self, log_dir: Path, port: int | None = None, model: Path = GGUF, alias: str = "sc2-tiny"):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"llama-cpp-python-server-{self.port}.log"
        self.cmd = llama_server_ref.llama_cpp_python_server(
            "--model", str(model), "--host", "127.0.0.1", "--port", str(self.port), "--model_alias", alias,
            "--n_threads", "1", "--n_ctx", "2048",
            # the same attention kernel as sc2lsp's in-process llama.cpp: the same greedy text
            "--flash_attn", str(flash_attn_for(model)).lower(),
            "--n_batch", str(LlamaSettings().eval_chunk), "--n_ubatch", str(LlamaSettings().eval_chunk))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> "LlamaCppPythonServer":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/v1/models", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {timeout} s: {self.log()[-2000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def sse(*objs) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs) + b"data: [DONE]\n\n"


def choice(text: str, finish=None) -> dict:
    return {"choices": [{"text": text, "index": 0, "finish_reason": finish}]}


class ScriptedServer:
    """A switchable fake endpoint (real sockets, real HTTP) for bad states and proxies."""

    GOOD_TEXT = ["ret", "urn", " 42"]

    def __init__(self, port: int | None = None, tls: tuple[Path, Path] | None = None):
        """``tls``: (certificate, key) PEM files: serve https."""
        self.mode = "good"
        self.models = ["sc2-tiny"]
        self.requests: list[dict] = []  # {"method", "path", "headers", "body"}
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _record(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers), "body": body.decode("utf-8", "replace")})
                return body

            def _send(self, status: int, body: bytes, ctype: str = "application/json", chunked: bool = False):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(body)

            def do_GET(self):
                self._record()
                self._handle()

            def do_POST(self):
                self._record()
                self._handle()

            def _handle(self):
                try:
                    outer.handle(self)
                except (BrokenPipeError, ConnectionResetError):  # the client closed it (a cancel)
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def handle(self, h) -> None:  # noqa: C901 - one branch per scripted behaviour
        mode, path = self.mode, h.path.split("?")[0]
        if mode == "500":
            h._send(500, b'{"error": {"message": "CUDA out of memory"}}')
            return
        if mode == "garbage":
            h._send(200, b"<html>Welcome to nginx!</html>", "text/html")
            return
        if path.endswith("/models"):
            h._send(200, json.dumps({"object": "list", "data": [{"id": m} for m in self.models]}).encode())
            return
        if "tokenize" in path:
            h._send(404, b'{"detail": "Not Found"}')
            return
        if mode == "garbage_stream":
            h._send(200, b"data: {not json\n\n", "text/event-stream", chunked=True)
            return
        if mode == "echo_key_401":
            h._send(401, json.dumps({"error": f"bad key {h.headers.get('Authorization', '')}"}).encode())
            return
        if mode == "slow":
            time.sleep(3)
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        events = [choice(t) for t in self.GOOD_TEXT] + [choice("", "stop")]
        for i, ev in enumerate(events):
            if mode == "close_mid" and i == 2:
                h.wfile.write(b"5\r\ndata:")  # half a chunk, then the connection drops
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            data = b"data: " + json.dumps(ev).encode() + b"\n\n"
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()
        done = b"data: [DONE]\n\n"
        h.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))

    def start(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def self_signed(dir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the ``openssl`` command (its own CA)."""
    cert, key = dir / "cert.pem", dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key
