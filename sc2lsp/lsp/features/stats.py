"""Acceptance statistics (``sc2lsp.stats``, local only): a suggestion shown (a new one: not the rest
of a suggestion the user is typing along with) with its latency, and an accepted one, whole or in
part (the editor's ``sc2lsp.suggestionAccepted`` names the inserted text; less than the shown text
is a partial accept, e.g. Neovim's accept-line). ``sc2lsp stats`` prints them per model and day."""

from __future__ import annotations

from ...stats import Recorder
from ..language_server import Sc2Server

#: engine sources that are a new suggestion for the user (``typed_along`` repeats a shown one)
NEW_SOURCES = ("model", "attached", "shared")


def _recorder(ls: Sc2Server) -> Recorder:
    rec = getattr(ls, "stats", None)
    if rec is None:
        rec = ls.stats = Recorder()
    return rec


def shown(ls: Sc2Server, uri: str, text: str, source: str, ms: float) -> None:
    model = str(ls.settings.model or "default")
    shown_map = ls.__dict__.setdefault("shown_suggestions", {})
    previous = shown_map.get(uri)
    if source in NEW_SOURCES or previous is None:
        _recorder(ls).shown(model, ms, len(text))
    shown_map[uri] = {"text": text, "model": model, "full": text if source in NEW_SOURCES or previous is None
                      else previous["full"]}


def accepted(ls: Sc2Server, uri: str, text: str) -> None:
    last = ls.__dict__.get("shown_suggestions", {}).get(uri)
    model = last["model"] if last else str(ls.settings.model or "default")
    whole = last is None or len(text) >= len(last["text"].rstrip())
    _recorder(ls).accepted(model, len(text), whole)
    if last is not None:
        ls.shown_suggestions.pop(uri, None)


def register(server: Sc2Server) -> None:
    server.stats = Recorder()
    server.shown_suggestions = {}
