"""HTTP API over an attribution index, and a client for it.

Endpoints (JSON in, JSON out; the server binds 127.0.0.1 unless told otherwise):

* ``POST /overlap {"document": text}`` -> ``{"spans": [[start, end], ...]}``: the Data Portraits
  API (raw character offsets of the merged spans found in the index), so clients written for
  the public Stack portrait work against a local or team index;
* ``POST /check {"document": text, "min_chars"?, "max_sources"?, "exclude"?: [paths]}`` ->
  ``{"spans": [Span.to_dict(), ...], "index": {...}}``: spans with sources, counts, licenses;
* ``GET /health`` -> index summary (its name and sizes; never an absolute path of this machine).

Resource bounds: every connection has a socket timeout (``timeout``, 10 s: a client that stalls
mid-request is dropped), and requests run on a fixed pool of ``workers`` threads; a connection
beyond what the pool and a short queue hold gets ``503`` at once, so 100 stalled POSTs hold at most
``workers`` threads for at most ``timeout`` seconds.

Bad requests get a 4xx with ``{"error": message}``; an unexpected failure a 500; the server
keeps serving either way. ``OverlapClient`` speaks both POST endpoints.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import UserError
from .query import AttributionIndex

log = logging.getLogger(__name__)
MAX_BODY = 8 * 1024 * 1024


def public_info(index: AttributionIndex) -> dict:
    """The index summary for clients: its folder's name, not the absolute path on this machine."""
    info = dict(index.info())
    info["path"] = index.path.name
    return info


class _Handler(BaseHTTPRequestHandler):
    server_version = "sc2lsp-attribution/1"
    protocol_version = "HTTP/1.1"
    timeout = 10.0  #: socket timeout (StreamRequestHandler applies it): a stalled client is dropped

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] in ("/", "/health"):
            self._reply(200, {"status": "ok", "index": public_info(self.server.index)})
        else:
            self._reply(404, {"error": f"no such endpoint {self.path}; use POST /overlap or POST /check"})

    def do_POST(self) -> None:  # noqa: N802
        route = self.path.split("?")[0]
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._reply(413, {"error": f"request body must be at most {MAX_BODY} bytes"})
            return
        body = self.rfile.read(length)
        if route not in ("/overlap", "/check"):
            self._reply(404, {"error": f"no such endpoint {route}; use POST /overlap or POST /check"})
            return
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._reply(400, {"error": 'the body must be UTF-8 JSON like {"document": "..."}'})
            return
        if not isinstance(req, dict) or not isinstance(req.get("document"), str):
            self._reply(400, {"error": 'the body must be a JSON object with a string "document"'})
            return
        extra = req.get("exclude") or []
        if not isinstance(extra, list) or not all(isinstance(p, str) for p in extra):
            self._reply(400, {"error": '"exclude" must be a list of paths'})
            return
        index: AttributionIndex = self.server.index
        try:
            exclude = list(self.server.exclude) + extra
            if route == "/overlap":
                spans = index.overlap(req["document"], exclude=exclude,
                                      min_chars=int(req.get("min_chars", self.server.min_chars)))
                self._reply(200, {"spans": spans})
            else:
                spans = index.check(req["document"], exclude=exclude,
                                    min_chars=int(req.get("min_chars", self.server.min_chars)),
                                    max_sources=int(req.get("max_sources", 5)))
                self._reply(200, {"spans": [s.to_dict() for s in spans], "index": public_info(index)})
        except (UserError, TypeError, ValueError) as e:
            self._reply(400, {"error": str(e)})
        except Exception as e:  # keep serving; the client gets the reason
            log.exception("attribution request failed")
            self._reply(500, {"error": f"internal error: {type(e).__name__}: {e}"})

    def log_message(self, fmt: str, *args) -> None:
        log.info("%s " + fmt, self.address_string(), *args)


class AttributionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, index: AttributionIndex, host: str = "127.0.0.1", port: int = 0, *,
                 exclude: tuple[str, ...] = (), min_chars: int = 50, workers: int = 8, timeout: float = 10.0):
        handler = type("_BoundedHandler", (_Handler,), {"timeout": timeout})
        super().__init__((host, port), handler)
        self.index = index
        self.exclude = tuple(exclude)
        self.min_chars = min_chars
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="attribution-http")
        self._slots = threading.BoundedSemaphore(workers * 2)  # running + a short queue

    def process_request(self, request, client_address) -> None:
        """On the bounded pool (not a new thread per connection); 503 when it is full."""
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                body = b'{"error": "busy: too many connections, try again"}'
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        self._pool.submit(self._work, request, client_address)

    def _work(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except (OSError, socket.timeout):
            pass
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_background(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="attribution-http", daemon=True)
        t.start()
        return t


class OverlapClient:
    """Client of the ``/overlap`` API (any Data Portraits server) and of sc2lsp's ``/check``."""

    def __init__(self, url: str, timeout: float = 10.0):
        url = url.rstrip("/")
        for suffix in ("/overlap", "/check"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
        if not url.startswith(("http://", "https://")):
            raise UserError(f"attribution server URL must start with http:// or https:// (got {url!r})")
        self.url = url
        self.timeout = timeout

    def _post(self, route: str, payload: dict) -> dict:
        req = urllib.request.Request(self.url + route, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                data = r.read()
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read()).get("error", "")
            except Exception:
                msg = ""
            raise UserError(f"attribution server {self.url}{route} answered {e.code}: {msg or e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"cannot reach attribution server {self.url}: {reason}") from e
        try:
            out = json.loads(data)
            assert isinstance(out, dict) and isinstance(out.get("spans"), list)
        except (ValueError, AssertionError) as e:
            raise UserError(f"attribution server {self.url}{route} sent an unexpected answer") from e
        return out

    def overlap(self, text: str) -> list[tuple[int, int]]:
        spans = self._post("/overlap", {"document": text})["spans"]
        try:
            return [(int(a), int(b)) for a, b in spans]
        except (TypeError, ValueError) as e:
            raise UserError(f"attribution server {self.url} sent malformed spans") from e

    def check(self, text: str, **options) -> list[dict]:
        return self._post("/check", {"document": text, **options})["spans"]
