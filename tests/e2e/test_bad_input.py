"""Bad input over a raw stdio connection: every request gets an answer and the server stays up.

Malformed JSON-RPC, invalid params, unknown methods and URIs, positions out of range, binary and
huge documents, invalid UTF-8 on disk, $/cancelRequest; after each, a normal request is served.
"""

from __future__ import annotations

import time

import pytest

from e2e_helpers import DEMO, GEOMETRY, OPTIONS, SERVER
from sc2lsp.lsp.rawclient import LspError, StdioClient

pytestmark = pytest.mark.slow

URI = GEOMETRY.as_uri()


@pytest.fixture(scope="module")
def raw(model_path):
    c = StdioClient(SERVER, cwd=DEMO)
    c.initialize(DEMO, dict(OPTIONS))
    assert c.wait_ready()["state"] == "ready"
    c.open(URI, GEOMETRY.read_text())
    yield c
    assert c.close() == 0


def still_serves(c: StdioClient) -> None:
    assert c.proc.poll() is None
    assert c.inline(URI, 13, 15, timeout=60), "a normal request after bad input got no suggestion"


def test_unparsable_json_gets_a_parse_error(raw):
    raw.send_bytes(b'{"jsonrpc": "2.0", "id": 99, "method": ')
    resp = raw.response(None, timeout=10)
    assert resp["error"]["code"] == -32700
    still_serves(raw)


def test_invalid_params_get_an_error_response(raw):
    bad = {"textDocument": {"uri": URI}, "position": {"line": "abc", "character": 0}}
    msg_id = raw.send_request("textDocument/inlineCompletion", bad)
    with pytest.raises(LspError) as e:
        raw.result(msg_id, timeout=10)
    assert e.value.code == -32602
    msg_id = raw.send_request("textDocument/inlineCompletion", {"position": {"line": -1}})
    with pytest.raises(LspError):
        raw.result(msg_id, timeout=10)
    still_serves(raw)


def test_unknown_method_and_not_jsonrpc(raw):
    with pytest.raises(LspError) as e:
        raw.request("sc2lsp/nonsense", {}, timeout=10)
    assert e.value.code == -32601
    raw.send_bytes(b"[1, 2, 3]")
    raw.send_bytes(b'{"id": 5, "hello": "world"}')
    assert raw.response(5, timeout=10)["error"]["code"] == -32600
    still_serves(raw)


def test_unknown_uris_and_positions_out_of_range(raw, tmp_path):
    assert raw.inline("file:///no/such/file.py", 0, 0, timeout=10) == []
    assert raw.inline("untitled:Untitled-1", 0, 0, timeout=10) == []
    assert raw.inline(URI, 9999, 0, timeout=10) == []
    # a character past the end of the line means the end of the line (LSP 3.17)
    items = raw.inline(URI, 13, 9999, timeout=60)
    assert all(i["range"]["start"] == {"line": 13, "character": 9999} for i in items)
    # a file that is not open is read from disk, if it is valid UTF-8
    latin = tmp_path / "latin1.py"
    latin.write_bytes("caf\xe9 = 1\nx = \n".encode("latin-1"))
    assert raw.inline(latin.as_uri(), 1, 4, timeout=10) == []
    good = tmp_path / "good.py"
    good.write_text(GEOMETRY.read_text())
    raw.inline(good.as_uri(), 13, 15, timeout=60)
    last = raw.status()["last"]
    assert last["source"] == "model" and last["prompt_tokens"] > 50  # the model saw the file's text
    still_serves(raw)


def test_binary_and_huge_documents(raw):
    raw.open("file:///tmp/binary.py", "x = 1\x00\x01\x02\nreturn ")
    assert raw.inline("file:///tmp/binary.py", 1, 7, timeout=10) == []
    huge = "x = 1\n" * 200_000  # 1.2 MB
    raw.open("file:///tmp/huge.py", huge)
    t0 = time.perf_counter()
    assert raw.inline("file:///tmp/huge.py", 100_000, 0, timeout=30) == []
    assert time.perf_counter() - t0 < 10
    raw.change("file:///tmp/huge.py", 2, "def f():\n    return ", (100_000, 0))
    assert raw.status("file:///tmp/huge.py")["document"]["chars"] == len(huge) + 20
    still_serves(raw)


def test_edits_out_of_range_are_clamped(raw):
    uri = "file:///tmp/clamp.py"
    raw.open(uri, "a = 1\n")
    raw.change(uri, 2, "b", (50, 0))  # past the end: appended
    raw.change(uri, 3, "c", (0, 400))  # past the line end: at the line end
    assert raw.status(uri)["document"]["text"] == "a = 1c\nb"
    still_serves(raw)


def test_cancel_request(raw):
    big = "\n".join(GEOMETRY.read_text() for _ in range(8))
    raw.open("file:///tmp/cancel.py", big)
    msg_id = raw.send_request("textDocument/inlineCompletion", raw.inline_params("file:///tmp/cancel.py", 200, 0))
    raw.notify("$/cancelRequest", {"id": msg_id})
    resp = raw.response(msg_id, timeout=30)
    # cancelled before it finished (the usual case) or answered first: never left hanging
    assert resp.get("error", {}).get("code", -32800) == -32800
    still_serves(raw)


def test_client_gone_mid_request_exits_cleanly(model_path, tmp_path):
    log = tmp_path / "stderr.log"
    c = StdioClient(SERVER, cwd=DEMO, stderr=log.open("w"))
    c.initialize(DEMO, dict(OPTIONS))
    assert c.wait_ready()["state"] == "ready"
    c.open(URI, GEOMETRY.read_text())
    c.send_request("textDocument/inlineCompletion", c.inline_params(URI, 13, 15))
    c.proc.stdin.close()  # the editor died: no shutdown, no exit
    rc = c.proc.wait(timeout=60)
    assert rc == 0, log.read_text()[-3000:]  # no hang, no crash while the model is freed


def test_bad_positions_log_one_warning_line_and_no_traceback(model_path, tmp_path):
    """A negative line gets InvalidParams (above); the log gets one warning line, not pygls's
    ERROR with a traceback per message, and a client exiting while the model loads leaves no
    error behind either."""
    log = tmp_path / "serve.log"
    c = StdioClient(SERVER + ["--log-file", str(log)], cwd=DEMO)
    c.initialize(DEMO, dict(OPTIONS))
    assert c.wait_ready()["state"] == "ready"
    c.open(URI, GEOMETRY.read_text())
    for line, col in ((-1, 0), (0, -5), (2**40, 0)):
        with pytest.raises(LspError) as e:
            c.inline(URI, line, col, timeout=30)
        assert e.value.code == -32602
    assert c.close() == 0
    text = log.read_text()
    assert text.count("WARNING sc2lsp.lsp.protocol: invalid params") == 3, text
    assert "Traceback" not in text and " ERROR " not in text, text
    # exiting at once, while the model loads (the pending warm-up of a didOpen meets a closed engine)
    c = StdioClient(SERVER + ["--log-file", str(log)], cwd=DEMO)
    c.initialize(DEMO, dict(OPTIONS, warmUp=True))
    c.open(URI, GEOMETRY.read_text())
    assert c.close() == 0
    text = log.read_text()
    assert "Traceback" not in text and " ERROR " not in text, text


def test_an_editor_that_quits_with_answers_pending_leaves_no_traceback(model_path, tmp_path):
    """Neovim's :qa! closes the pipes while answers are on their way: each one was an ERROR with a
    BrokenPipeError traceback in the server's log."""
    import json
    import subprocess

    log = tmp_path / "serve.log"
    proc = subprocess.Popen(SERVER + ["--log-file", str(log)], cwd=DEMO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def send(msg: dict) -> None:
        body = json.dumps(msg).encode()
        proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        proc.stdin.flush()

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
          "params": {"processId": None, "rootUri": DEMO.as_uri(), "capabilities": {}, "initializationOptions": OPTIONS}})
    send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    time.sleep(1.0)
    proc.stdout.close()  # the editor stops reading, with requests pending
    for i in range(5):
        send({"jsonrpc": "2.0", "id": 10 + i, "method": "sc2lsp/status", "params": {}})
    time.sleep(1.0)
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    text = log.read_text()
    assert "Traceback" not in text and " ERROR " not in text, text
