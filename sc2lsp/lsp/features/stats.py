"""Acceptance statistics (``sc2lsp.stats``, local only): a suggestion shown (a new one: not the rest
of a suggestion the user is typing along with) with its latency, and an accepted one, whole or in
part (the editor's ``sc2lsp.suggestionAccepted`` names the inserted text; less than the shown text
is a partial accept, e.g. Neovim's accept-line). ``sc2lsp stats`` prints them per model and day."""

from __future__ import annotations

from ...stats import Recorder
from ..language_server import Sc2Server

#: engine sources that are a new suggestion for the user (``typed_along`` repeats a shown one)
NEW_SOURCES = ("model", "attached", "shared")


def shown(ls: Sc2Server, uri: str, text: str, source: str, ms: float) -> None:
    model = str(ls.settings.model or "default")
    if source in NEW_SOURCES or uri not in ls.shown_suggestions:
        ls.stats.shown(model, ms, len(text))
    ls.shown_suggestions[uri] = {"text": text, "model": model}


def accepted(ls: Sc2Server, uri: str, text: str) -> None:
    last = ls.shown_suggestions.get(uri)
    model = last["model"] if last else str(ls.settings.model or "default")
    whole = last is None or len(text) >= len(last["text"].rstrip())
    ls.stats.accepted(model, len(text), whole)
    ls.shown_suggestions.pop(uri, None)


def register(server: Sc2Server) -> None:
    """The feature's state: the recorder and, per document, the suggestion shown last."""
    server.stats = Recorder()
    server.shown_suggestions = {}
