"""Feature handlers of sc2lsp/lsp/features read and tested on their own (the real protocol runs
in tests/e2e): each is a module-level function of the server and its params."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from sc2lsp.config import Settings
from sc2lsp.lsp.features import FEATURES, attribution, completion
from sc2lsp.lsp.params import command_args
from sc2lsp.lsp.server import create_server


def test_suggestion_accepted_records_the_last_accepted_suggestion():
    class Stats:  # what features/stats.py records of an accept
        def __init__(self):
            self.accepted = lambda model, chars, whole: self.seen.append((model, chars, whole))
            self.seen = []

    ls = SimpleNamespace(last_accepted=None, settings=Settings(model="m"), stats=Stats(), shown_suggestions={})
    rng = {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 9}}
    attribution.suggestion_accepted(ls, "file:///w/a.py", rng, "hello")
    assert ls.last_accepted == {"uri": "file:///w/a.py", "range": rng, "text": "hello"}
    assert ls.stats.seen == [("m", 5, True)]
    attribution.suggestion_accepted(ls, ["file:///w/b.py", rng, "x"])  # wrapped in one more list
    assert ls.last_accepted["uri"] == "file:///w/b.py"
    with pytest.raises(JsonRpcInvalidParams):
        attribution.suggestion_accepted(ls, "only-a-uri")
    assert command_args(("a",)) == ["a"]


@pytest.mark.parametrize("mode, inline, expected", [("auto", True, False), ("auto", False, True),
                                                    ("always", True, True), ("never", False, False)])
def test_completion_fallback_follows_the_setting_and_the_client(mode, inline, expected):
    td = types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities() if inline else None)
    ls = SimpleNamespace(settings=Settings(completion_fallback=mode),
                         client_capabilities=types.ClientCapabilities(text_document=td))
    assert completion.wants_completion_fallback(ls) is expected


def test_create_server_registers_every_feature():
    server = create_server(Settings(model="/nonexistent.gguf"))
    try:
        features = set(server.protocol.fm.features)
        assert {types.TEXT_DOCUMENT_INLINE_COMPLETION, types.TEXT_DOCUMENT_COMPLETION, types.TEXT_DOCUMENT_DID_OPEN,
                types.TEXT_DOCUMENT_DID_CHANGE, types.TEXT_DOCUMENT_DID_CLOSE, "sc2lsp/status",
                "sc2lsp/attribution", types.WORKSPACE_DID_CHANGE_CONFIGURATION} <= features
        assert {"sc2lsp.suggestionAccepted", "sc2lsp.pullModel"} <= set(server.protocol.fm.commands)
        assert all(callable(getattr(f, "register", None)) for f in FEATURES)
    finally:
        server.engine.close()
