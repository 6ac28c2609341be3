"""A small JSON-RPC client that drives ``sc2lsp serve`` over stdio the way an editor does.

Used by ``sc2lsp.demo``, ``bench/latency.py`` and the bad-input tests (which need to send bytes
no real client library would). Plain dicts in and out; a reader thread collects responses and
server notifications.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class LspError(Exception):
    def __init__(self, error: dict):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.error = error


class StdioClient:
    def __init__(self, cmd: list[str] | None = None, *, cwd: str | Path | None = None, env: dict | None = None,
                 stderr: Any = subprocess.DEVNULL):
        cmd = cmd or [sys.executable, "-m", "sc2lsp.cli", "serve"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd,
                                     env={**os.environ, **(env or {})})
        self._ids = itertools.count(1)
        self._cv = threading.Condition()
        self._responses: dict[Any, dict] = {}
        self.notifications: list[dict] = []
        self.received_at: dict[Any, float] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # ---------------------------------------------------------------- wire

    def send_bytes(self, body: bytes, *, header: bytes | None = None) -> None:
        header = header if header is not None else b"Content-Length: %d\r\n\r\n" % len(body)
        self.proc.stdin.write(header + body)
        self.proc.stdin.flush()

    def _send(self, msg: dict) -> None:
        self.send_bytes(json.dumps(msg).encode("utf-8"))

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self._cv:
                        self._cv.notify_all()
                    return
                line = line.strip()
                if not line:
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length is None:
                continue
            msg = json.loads(out.read(length))
            now = time.perf_counter()
            with self._cv:
                if "method" in msg and "id" in msg:  # a request from the server: answer it
                    self._answer_server_request(msg)
                elif "method" in msg:
                    self.notifications.append(msg)
                else:
                    self._responses[msg.get("id")] = msg
                    self.received_at[msg.get("id")] = now
                self._cv.notify_all()

    def _answer_server_request(self, msg: dict) -> None:
        result: Any = None
        if msg["method"] == "workspace/configuration":
            result = [None for _ in msg.get("params", {}).get("items", [])]
        self._send({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    # ---------------------------------------------------------------- API

    def send_request(self, method: str, params: Any = None) -> int:
        msg_id = next(self._ids)
        self._send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id

    def response(self, msg_id: Any, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        with self._cv:
            while msg_id not in self._responses:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no response to request {msg_id} in {timeout} s")
                self._cv.wait(min(left, 0.5))
            return self._responses.pop(msg_id)

    def result(self, msg_id: Any, timeout: float = 60.0) -> Any:
        msg = self.response(msg_id, timeout)
        if "error" in msg:
            raise LspError(msg["error"])
        return msg.get("result")

    def request(self, method: str, params: Any = None, timeout: float = 60.0) -> Any:
        return self.result(self.send_request(method, params), timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def messages(self, method: str = "window/showMessage") -> list[dict]:
        with self._cv:
            return [n["params"] for n in self.notifications if n["method"] == method]

    # ---------------------------------------------------------------- editor-like helpers

    def initialize(self, root: Path | None = None, options: Any = None, *, inline: bool = True) -> dict:
        text_doc: dict[str, Any] = {"synchronization": {"didSave": False}, "completion": {}}
        if inline:
            text_doc["inlineCompletion"] = {}
        params = {
            "processId": os.getpid(),
            "rootUri": root.resolve().as_uri() if root else None,
            "workspaceFolders": [{"uri": root.resolve().as_uri(), "name": root.resolve().name}] if root else None,
            "capabilities": {"textDocument": text_doc, "general": {"positionEncodings": ["utf-16"]},
                             "workspace": {"workspaceFolders": True}},
            "initializationOptions": options,
        }
        result = self.request("initialize", params)
        self.notify("initialized", {})
        return result

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language, "version": version, "text": text}})

    def change(self, uri: str, version: int, text: str, start: tuple[int, int], end: tuple[int, int] | None = None) -> None:
        end = end or start
        rng = {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}}
        self.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                "contentChanges": [{"range": rng, "text": text}]})

    def inline_params(self, uri: str, line: int, character: int) -> dict:
        return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
                "context": {"triggerKind": 2}}

    def inline(self, uri: str, line: int, character: int, timeout: float = 60.0) -> list[dict]:
        result = self.request("textDocument/inlineCompletion", self.inline_params(uri, line, character), timeout)
        return (result or {}).get("items", []) if isinstance(result, dict) else (result or [])

    def status(self, uri: str | None = None) -> dict:
        return self.request("sc2lsp/status", {"uri": uri} if uri else {})

    def wait_ready(self, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            st = self.status()
            if st["state"] in ("ready", "failed") or time.monotonic() > end:
                return st
            time.sleep(0.05)

    def close(self, timeout: float = 10.0) -> int:
        try:
            if self.proc.poll() is None:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit")
        except Exception:
            pass
        try:
            self.proc.stdin.close()
        except Exception:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
