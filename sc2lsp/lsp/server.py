"""``create_server``: the language server (``language_server.Sc2Server``) with every feature of
``features/`` registered. ``sc2lsp serve`` (``sc2lsp/commands/serve.py``) runs it over stdio or TCP."""

from __future__ import annotations

from ..config import Settings
from .features import FEATURES
from .language_server import Sc2Server

__all__ = ["Sc2Server", "create_server"]


def create_server(base: Settings | None = None) -> Sc2Server:
    """A server with every feature of ``features.FEATURES`` registered."""
    server = Sc2Server(base)
    for feature in FEATURES:
        feature.register(server)
    return server
