"""``sc2lsp/attribution`` and the commands with bad input, over a raw stdio connection: every request
gets one error (or an empty answer) and the next request is served."""

from __future__ import annotations

import random

import pytest

from e2e_helpers import OPTIONS, SERVER
from sc2lsp.lsp.rawclient import LspError, StdioClient

pytestmark = pytest.mark.slow

CODE = '''def tokenize_expression(source, operators="+-*/()"):
    """Split an arithmetic expression into numbers, names and operators."""
    tokens, current = [], ""
    for ch in source:
        if ch in operators or ch.isspace():
            if current:
                tokens.append(current)
                current = ""
            if not ch.isspace():
                tokens.append(ch)
        else:
            current += ch
    return tokens + ([current] if current else [])
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory, model_path):
    from sc2lsp.attribution.build import build_index

    tmp = tmp_path_factory.mktemp("attr-bad")
    corpus = tmp / "corpus"
    corpus.mkdir()
    (corpus / "lexer.py").write_text("# SPDX-License-Identifier: Apache-2.0\n" + CODE)
    index = tmp / "index"
    build_index([corpus], index)
    ws = tmp / "ws"
    ws.mkdir()
    (ws / "a.py").write_text("x = 1\n")
    c = StdioClient(SERVER + ["--log-file", str(tmp / "serve.log")], cwd=ws)
    c.log_path = tmp / "serve.log"
    c.initialize(ws, dict(OPTIONS, attributionIndex=str(index), repoContext=False))
    assert c.wait_ready()["state"] == "ready"
    c.open((ws / "a.py").as_uri(), "x = 1\ny = 2\n")
    yield c, ws
    assert c.close() == 0


def still_serves(c: StdioClient) -> None:
    assert c.proc.poll() is None
    res = c.request("sc2lsp/attribution", {"text": CODE.replace("    ", "\t")}, timeout=60)
    [span] = res["spans"]
    assert span["sources"][0]["path"] == "lexer.py" and span["sources"][0]["license"] == "Apache-2.0"


def error(c: StdioClient, method: str, params) -> LspError:
    with pytest.raises(LspError) as e:
        c.request(method, params, timeout=120)
    return e.value


def test_empty_text_has_no_spans(setup):
    c, _ = setup
    assert c.request("sc2lsp/attribution", {"text": ""})["spans"] == []
    still_serves(c)


def test_one_megabyte_is_answered_and_more_is_one_error(setup):
    from sc2lsp.attribution.query import MAX_QUERY_CHARS

    c, _ = setup
    rng = random.Random(0)
    words = ["value", "index", "result", "self", "return", "for", "in", "if", "else", "None", "item", "data"]
    parts, n = [], 0
    while n < MAX_QUERY_CHARS - len(CODE) - 200:
        line = "    " * rng.randint(0, 3) + " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + "\n"
        parts.append(line)
        n += len(line)
    big = "".join(parts[: len(parts) // 2]) + CODE + "".join(parts[len(parts) // 2:])
    big += "#" * (MAX_QUERY_CHARS - len(big))
    assert len(big) == MAX_QUERY_CHARS
    res = c.request("sc2lsp/attribution", {"text": big}, timeout=120)  # bounded: answered, not timed out
    assert any("tokenize_expression" in s["text"] for s in res["spans"])
    e = error(c, "sc2lsp/attribution", {"text": big + "x"})
    assert e.code == -32803 and "limit" in str(e)
    still_serves(c)


def test_wrong_types_unknown_uri_and_bad_range(setup):
    c, ws = setup
    assert error(c, "sc2lsp/attribution", {"text": 42}).code == -32602
    assert error(c, "sc2lsp/attribution", {"uri": ["x"]}).code == -32602
    e = error(c, "sc2lsp/attribution", {"uri": (ws / "missing.py").as_uri()})
    assert e.code == -32803 and "missing.py" in str(e)
    e = error(c, "sc2lsp/attribution", {"uri": "untitled:Untitled-1"})
    assert e.code == -32803
    uri = (ws / "a.py").as_uri()
    e = error(c, "sc2lsp/attribution", {"uri": uri, "range": {"start": {"line": 50, "character": 0},
                                                             "end": {"line": 60, "character": 0}}})
    assert e.code == -32803 and "outside" in str(e)
    assert error(c, "sc2lsp/attribution", {"uri": uri, "range": {"start": {"line": "a"}}}).code == -32602
    still_serves(c)


def test_bad_command_arguments(setup):
    c, ws = setup
    run = lambda cmd, args: error(c, "workspace/executeCommand", {"command": cmd, "arguments": args})  # noqa: E731
    assert run("sc2lsp.suggestionAccepted", ["only-a-uri"]).code == -32602
    assert run("sc2lsp.suggestionAccepted", [1, 2, 3]).code == -32602
    assert run("sc2lsp.pullModel", [42]).code == -32602
    e = run("sc2lsp.pullModel", ["no-such-model"])
    assert e.code == -32803 and "unknown model" in str(e)
    # a good report after the bad ones is recorded
    uri = (ws / "a.py").as_uri()
    rng = {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 0}}
    assert c.request("workspace/executeCommand", {"command": "sc2lsp.suggestionAccepted",
                                                  "arguments": [uri, rng, CODE]}) is None
    res = c.request("sc2lsp/attribution", {})
    assert res["text"] == CODE and res["uri"] == uri and res["spans"]
    still_serves(c)


def test_expected_errors_are_answered_without_a_traceback_in_the_log(setup):
    """A wrong type, a range outside the document, a document not open (and "no suggestion
    accepted yet"): the client gets the message; the log got pygls's ERROR traceback for each
    (11 in one session)."""
    c, ws = setup
    uri = (ws / "a.py").as_uri()
    assert error(c, "sc2lsp/attribution", {"uri": 5}).code == -32602
    rng = {"start": {"line": 40, "character": 0}, "end": {"line": 41, "character": 0}}
    assert error(c, "sc2lsp/attribution", {"uri": uri, "range": rng}).code == -32803
    assert error(c, "sc2lsp/attribution", {"uri": (ws / "closed.py").as_uri()}).code == -32803
    still_serves(c)
    log = c.log_path.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log


def test_an_index_listed_twice_is_checked_once(tmp_path):
    from sc2lsp.attribution.provider import AttributionProvider

    idx = tmp_path / "index"
    got = AttributionProvider().indexes([str(idx), str(idx) + "/", str(tmp_path / "." / "index"), str(tmp_path / "other")], None)
    assert got == (idx, tmp_path / "other")
