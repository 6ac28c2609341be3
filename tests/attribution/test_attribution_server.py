"""Attribution over HTTP (a real server on 127.0.0.1) and through the real ``sc2lsp`` command."""

from __future__ import annotations

import http.client
import inspect
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sc2lsp.attribution import AttributionIndex, build_index
from sc2lsp.attribution.server import AttributionServer, OverlapClient
from sc2lsp.errors import UserError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("srv-corpus")
    (root / "pkg").mkdir()
    (root / "pkg" / "wrap.py").write_text(inspect.getsource(textwrap))
    (root / "pkg" / "LICENSE").write_text("Permission is hereby granted, free of charge, to any person obtaining "
                                          "a copy of this software\n")
    return root


@pytest.fixture(scope="module")
def index_dir(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("srv-index") / "idx"
    build_index([corpus], out)
    return out


@pytest.fixture(scope="module")
def server(index_dir):
    srv = AttributionServer(AttributionIndex.open(index_dir), "127.0.0.1", 0)
    srv.start_background()
    yield srv
    srv.shutdown()
    srv.server_close()


def snippet(corpus: Path) -> str:
    return "y = 0  # \u2603\n" + (corpus / "pkg" / "wrap.py").read_text()[4000:4600] + "\n\u2603 done\n"


def test_overlap_api_matches_the_index(server, corpus, index_dir):
    text = snippet(corpus)
    client = OverlapClient(server.url + "/overlap")
    spans = client.overlap(text)
    assert spans == [tuple(s) for s in AttributionIndex.open(index_dir).overlap(text)]
    assert len(spans) == 1 and 0 < spans[0][0] < spans[0][1] < len(text)
    assert client.overlap("nothing to see here " * 10) == []


def test_check_api_has_sources(server, corpus):
    spans = OverlapClient(server.url).check(snippet(corpus), max_sources=1)
    assert len(spans) == 1
    src = spans[0]["sources"][0]
    assert src["path"] == "pkg/wrap.py" and src["license"] == "MIT" and src["start_line"] > 1
    assert OverlapClient(server.url).check(snippet(corpus), exclude=[str(corpus)]) == []


def _raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data)


def test_bad_requests_get_errors_and_the_server_keeps_serving(server, corpus):
    assert _raw(server, "POST", "/overlap", b"{not json")[0] == 400
    assert _raw(server, "POST", "/overlap", json.dumps({"text": "x"}).encode())[0] == 400
    assert _raw(server, "POST", "/overlap", b'{"document": "\xff"}')[0] == 400
    status, body = _raw(server, "POST", "/check", json.dumps({"document": "x", "min_chars": 0}).encode())
    assert status == 400 and "min_chars" in body["error"]
    assert _raw(server, "POST", "/check", json.dumps({"document": "x", "exclude": "/"}).encode())[0] == 400
    assert _raw(server, "POST", "/nope", b"{}")[0] == 404
    assert _raw(server, "POST", "/overlap", b"", {"Content-Length": str(10**9)})[0] == 413
    status, body = _raw(server, "GET", "/health")
    assert status == 200 and body["index"]["documents"] == 2
    assert OverlapClient(server.url).overlap(snippet(corpus))  # still serving


def test_client_errors_are_user_errors(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match="cannot reach"):
        OverlapClient(f"http://127.0.0.1:{port}", timeout=2).overlap("x" * 60)
    with pytest.raises(UserError, match="http://"):
        OverlapClient("127.0.0.1:1")
    with pytest.raises(UserError, match="answered 404"):
        OverlapClient(server.url + "/missing/overlap").overlap("x" * 60)


def _sc2lsp(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sc2lsp.cli", *args], input=stdin, capture_output=True, timeout=120)


@pytest.mark.slow
def test_cli_build_check_and_remote_check(tmp_path, corpus, server):
    out = tmp_path / "cli-index"
    r = _sc2lsp("attribution", "build", str(corpus), "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert b"indexed 2 documents" in r.stdout
    text = snippet(corpus).encode()
    r = _sc2lsp("attribution", "check", "--index", str(out), stdin=text)
    assert r.returncode == 0, r.stderr
    assert b"pkg/wrap.py:" in r.stdout and b"license: MIT" in r.stdout and b"copied, in 1 document" in r.stdout
    r = _sc2lsp("attribution", "check", "--index", str(out), "--json", stdin=text)
    assert json.loads(r.stdout)["spans"][0]["sources"][0]["path"] == "pkg/wrap.py"
    r = _sc2lsp("attribution", "check", "--url", server.url, "--json", stdin=text)
    assert r.returncode == 0 and len(json.loads(r.stdout)["spans"]) == 1
    for args, stdin, msg in [
        (("check", "--index", str(out)), b"\xff\xfe", b"not valid UTF-8"),
        (("check", "--index", str(tmp_path / "none")), b"x", b"does not exist"),
        (("build", str(tmp_path / "missing"), "--out", str(tmp_path / "o")), b"", b"does not exist"),
    ]:
        r = _sc2lsp("attribution", *args, stdin=stdin)
        assert r.returncode == 2 and msg in r.stderr and b"Traceback" not in r.stderr
