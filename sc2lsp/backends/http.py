"""HTTP to a model server: the only module in sc2lsp that opens a connection to one.

Standard library only (``http.client``, ``ssl``, ``urllib.request``'s proxy rules): no new
dependency, and every socket is ours to close, which is how a superseded request is stopped.

* HTTPS is verified (``ssl.create_default_context``) against the system store or ``ca_bundle``.
* ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (either case) are honoured as ``urllib`` reads
  them; ``https`` goes through a ``CONNECT`` tunnel. Loopback endpoints never use a proxy.
* ``stream()`` yields the JSON objects of a server-sent-events body. A watcher thread closes the
  socket the moment ``should_stop()`` turns true or a deadline passes: the blocked read returns at
  once and the server sees the client go away (llama-server and llama-cpp-python's server then
  stop generating). ``Stream.reason`` says why it ended early (``cancelled``, ``prompt_time``,
  ``time``).
* Errors are ``RemoteError`` with a message fit for the user: the endpoint and the problem, never a
  header (so never the API key).
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Iterator

#: the longest error body read and the longest excerpt of it shown
_ERROR_BODY = 4096
_SHOWN = 200


class RemoteError(Exception):
    """The endpoint failed. ``kind``: down, timeout, http, garbage, model, closed, config."""

    def __init__(self, message: str, kind: str = "http", status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (prompts to it need no redaction, and no proxy)."""
    h = host.strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def excerpt(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


@dataclass(frozen=True)
class Endpoint:
    """A parsed base URL, e.g. ``https://gpu-box:8080`` or ``http://127.0.0.1:8000/v1``."""

    url: str
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        u = urllib.parse.urlsplit(url.strip())
        if u.scheme not in ("http", "https") or not u.hostname:
            raise RemoteError(f"endpoint {url!r} is not an http:// or https:// URL", "config")
        if u.username or u.password:
            raise RemoteError(f"endpoint {u.hostname}: put credentials in apiKeyEnv, not in the URL", "config")
        try:
            port = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            raise RemoteError(f"endpoint {url!r} has an invalid port", "config") from None
        shown = f"{u.scheme}://{u.netloc}{u.path.rstrip('/')}"
        return cls(shown, u.scheme, u.hostname, port, u.path.rstrip("/"))

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def _proxy_for(ep: Endpoint) -> urllib.parse.SplitResult | None:
    if ep.loopback:
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(ep.scheme)
    if not proxy or urllib.request.proxy_bypass_environment(ep.host, proxies):
        return None
    p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    return p if p.hostname else None


class Stream:
    """One streaming response; iterate for its JSON events, ``close()`` to stop it."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse | None, what: str):
        self.conn, self.resp, self.what = conn, resp, what
        self.reason: str | None = None  #: why it was closed early: cancelled, prompt_time, time
        self.first_event_at: float | None = None
        self._done = threading.Event()

    def watch(self, should_stop: Callable[[], bool] | None, prompt_deadline: float | None,
              deadline_after_first: float | None) -> None:
        """Close the socket when ``should_stop()`` or a deadline trips (checked every 5 ms)."""
        if should_stop is None and prompt_deadline is None and deadline_after_first is None:
            return

        def run() -> None:
            while not self._done.wait(0.005):
                now = time.perf_counter()
                if should_stop is not None and should_stop():
                    self.close("cancelled")
                elif self.first_event_at is None and prompt_deadline is not None and now > prompt_deadline:
                    self.close("prompt_time")
                elif (self.first_event_at is not None and deadline_after_first is not None
                      and now > self.first_event_at + deadline_after_first):
                    self.close("time")

        threading.Thread(target=run, name="sc2lsp-http-watch", daemon=True).start()

    def close(self, reason: str | None = None) -> None:
        if self._done.is_set():
            return
        if reason and self.reason is None:
            self.reason = reason
        self._done.set()
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader at once; the server sees EOF
            except OSError:
                pass
        self.conn.close()

    def events(self) -> Iterator[dict]:
        """The ``data:`` JSON objects of the body until ``[DONE]`` or the end of the stream."""
        try:
            while self.resp is not None:
                try:
                    line = self.resp.readline(1 << 20)
                except (OSError, http.client.HTTPException, ValueError, AttributeError) as e:
                    if self.reason is not None:
                        return
                    if isinstance(e, socket.timeout):
                        raise RemoteError(f"{self.what}: no token for too long", "timeout") from None
                    raise RemoteError(f"{self.what}: the connection closed mid-generation", "closed") from None
                if not line:
                    if self.reason is None and not self.resp.isclosed() and self.resp.chunked:
                        raise RemoteError(f"{self.what}: the stream ended early", "closed")
                    return
                line = line.strip()
                if not line or line.startswith(b":") or line.startswith((b"event:", b"id:", b"retry:")):
                    continue
                if not line.startswith(b"data:"):
                    raise RemoteError(f"{self.what} returned something that is not a server-sent event: "
                                      f"{excerpt(line)!r}", "garbage")
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    obj = json.loads(data)
                except ValueError:
                    raise RemoteError(f"{self.what} sent an event that is not JSON: {excerpt(data)!r}", "garbage") from None
                if not isinstance(obj, dict):
                    raise RemoteError(f"{self.what} sent an event that is not a JSON object: {excerpt(data)!r}", "garbage")
                if self.first_event_at is None:
                    self.first_event_at = time.perf_counter()
                if "error" in obj:
                    raise RemoteError(f"{self.what} failed mid-generation: {_error_text(obj)}", "http")
                yield obj
        finally:
            self.close()


def _error_text(obj: Any) -> str:
    err = obj.get("error", obj.get("detail", obj)) if isinstance(obj, dict) else obj
    if isinstance(err, dict):
        err = err.get("message", err.get("msg", err))
    if isinstance(err, list) and err and isinstance(err[0], dict):  # FastAPI validation errors
        err = "; ".join(str(e.get("msg", e)) for e in err[:3])
    return excerpt(str(err))


class Client:
    """Requests to one endpoint. Thread-safe: each thread has its own keep-alive connection."""

    def __init__(self, endpoint: str, *, api_key: str | None = None, ca_bundle: str | None = None,
                 connect_timeout: float = 5.0):
        self.ep = Endpoint.parse(endpoint)
        self._api_key = api_key
        self.connect_timeout = connect_timeout
        self.proxy = _proxy_for(self.ep)
        self._ssl: ssl.SSLContext | None = None
        if self.ep.scheme == "https":
            try:
                self._ssl = ssl.create_default_context(cafile=ca_bundle or None)
            except (OSError, ssl.SSLError) as e:
                raise RemoteError(f"CA bundle {ca_bundle}: cannot be read ({e})", "config") from None
        self._local = threading.local()

    # ------------------------------------------------------------------ connections

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        ep, proxy = self.ep, self.proxy
        host, port = (proxy.hostname, proxy.port or 80) if proxy else (ep.host, ep.port)
        if ep.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl)
            if proxy:
                conn.set_tunnel(ep.host, ep.port, headers=self._proxy_auth())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        return conn

    def _proxy_auth(self) -> dict[str, str]:
        p = self.proxy
        if p is None or not p.username:
            return {}
        cred = f"{urllib.parse.unquote(p.username)}:{urllib.parse.unquote(p.password or '')}"
        return {"Proxy-Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}

    def _target(self, path: str) -> str:
        path = self.ep.base_path + path
        if self.proxy and self.ep.scheme == "http":  # a plain proxy takes the absolute URL
            return f"http://{self.ep.host}:{self.ep.port}{path}"
        return path

    def _headers(self, body: bytes | None) -> dict[str, str]:
        h = {"Accept": "application/json, text/event-stream", "User-Agent": "sc2lsp"}
        if body is not None:
            h["Content-Type"] = "application/json"
        if self._api_key:
            h["Authorization"] = f"Bearer {self._api_key}"
        if self.proxy and self.ep.scheme == "http":
            h.update(self._proxy_auth())
        return h

    def _send(self, method: str, path: str, payload: Any, timeout: float | None,
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: once more, fresh
            conn = None if attempt else getattr(self._local, "conn", None)
            self._local.conn = None
            reused = conn is not None
            if conn is None:
                conn = self._connect(self.connect_timeout)
            try:
                if conn.sock is None:
                    conn.connect()
                conn.sock.settimeout(timeout)
                conn.request(method, self._target(path), body=body, headers=self._headers(body))
                return conn, conn.getresponse()
            except (ConnectionError, http.client.HTTPException) as e:
                conn.close()
                if reused:
                    continue
                raise self._error(e, path, timeout) from None
            except OSError as e:
                conn.close()
                raise self._error(e, path, timeout) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, e: BaseException, path: str, timeout: float | None) -> RemoteError:
        if isinstance(e, socket.timeout):
            return RemoteError(f"{self.ep.url}{path}: no answer within {timeout or self.connect_timeout:g} s", "timeout")
        if isinstance(e, ssl.SSLError):
            return RemoteError(f"{self.ep.url}: TLS failed ({e.reason or e}); set caBundle to your CA's "
                               f"certificates if it uses a private CA", "down")
        if isinstance(e, http.client.HTTPException) and not isinstance(e, http.client.RemoteDisconnected):
            return RemoteError(f"{self.ep.url}{path}: not an HTTP answer ({type(e).__name__})", "garbage")
        return RemoteError(f"cannot connect to {self.ep.url}: {_why(e)}", "down")

    def _check(self, conn, resp, what: str) -> None:
        if resp.status < 400:
            return
        try:
            raw = resp.read(_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            raw = b""
        conn.close()
        try:
            detail = _error_text(json.loads(raw))
        except ValueError:
            detail = excerpt(raw) or resp.reason
        raise RemoteError(f"{what} answered {resp.status}: {detail}", "http", resp.status)

    # ------------------------------------------------------------------ requests

    def get_json(self, path: str, timeout: float = 10.0) -> Any:
        return self.post_json(path, None, timeout, method="GET")

    def post_json(self, path: str, payload: Any, timeout: float = 30.0, method: str = "POST") -> Any:
        what = f"{self.ep.url}{path}"
        conn, resp = self._send(method, path, payload, timeout)
        self._check(conn, resp, what)
        try:
            raw = resp.read()
        except socket.timeout:
            conn.close()
            raise RemoteError(f"{what}: no answer within {timeout:g} s", "timeout") from None
        except (OSError, http.client.HTTPException):
            conn.close()
            raise RemoteError(f"{what}: the connection closed mid-answer", "closed") from None
        if resp.will_close:
            conn.close()
        else:
            self._local.conn = conn
        try:
            return json.loads(raw)
        except ValueError:
            raise RemoteError(f"{what} returned something that is not JSON: {excerpt(raw)!r}", "garbage") from None

    def stream(self, path: str, payload: Any, *, should_stop: Callable[[], bool] | None = None,
               prompt_deadline: float | None = None, generate_s: float | None = None,
               read_timeout: float | None = None) -> Stream:
        """POST ``payload`` and return its event stream, on a fresh connection: closing it is the
        cancel. The watcher runs from the moment the request is sent (some servers send no headers
        before the first token)."""
        what = f"{self.ep.url}{path}"
        body = json.dumps(payload).encode("utf-8")
        conn = self._connect(self.connect_timeout)
        try:
            conn.connect()
        except OSError as e:
            conn.close()
            raise self._error(e, path, None) from None
        s = Stream(conn, None, what)
        s.watch(should_stop, prompt_deadline, generate_s)
        try:
            conn.sock.settimeout(read_timeout)
            conn.request("POST", self._target(path), body=body, headers=self._headers(body))
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException, AttributeError) as e:
            if s.reason is not None:  # closed by the watcher before the server answered
                return s
            s.close()
            raise self._error(e, path, read_timeout) from None
        s.resp = resp
        try:
            self._check(conn, resp, what)
            ctype = resp.getheader("Content-Type", "")
            if "json" in ctype and "event-stream" not in ctype:  # an object instead of a stream
                raise RemoteError(f"{what} answered JSON instead of a stream: {excerpt(resp.read(_ERROR_BODY))!r}",
                                  "garbage")
        except BaseException:
            s.close()
            raise
        return s


def _why(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(e, socket.gaierror):
        return "unknown host"
    if isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError)):
        return "the server closed the connection"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__
