"""``sc2lsp/status``: the engine's status (model, timings, cache, totals) plus the server's own
(open documents, encoding, workspaces, attribution indexes); with ``{"prompt": true}`` the last
prompt, with ``{"uri": ...}`` what the server believes that document is (tests, bug reports)."""

from __future__ import annotations

from typing import Any

from ... import __version__
from ...config import settings_doc
from ..language_server import Sc2Server
from .completion import wants_completion_fallback


STATUS = "sc2lsp/status"


def status(ls: Sc2Server, params: Any = None) -> dict:
    out = ls.engine.status()
    out["server"] = {
        "version": __version__,
        "open_documents": len(ls.docs),
        "position_encoding": ls.encoding,
        "workspace_folders": [f.uri for f in ls.protocol._workspace.folders.values()] if ls.protocol._workspace else [],
        "completion_fallback": wants_completion_fallback(ls),
        "settings_defaults": settings_doc(),
        "workspaces": [{"root": str(root), "indexed": ws.ready.is_set(), "files": getattr(ws.report, "files", None),
                        "index_seconds": getattr(ws, "index_seconds", None),
                        "watching": getattr(ws, "_watcher", None) is not None,
                        "not_watching_because": getattr(ws, "watch_error", None)}
                       for root, ws in ls.workspaces.contexts().items()],
        "attribution": {
            "indexes": [str(p) for p in ls.attribution.indexes(ls.settings.attribution_index, ls.settings.model)],
            "from_setting": bool(ls.settings.attribution_index),
            "last_accepted": ls.last_accepted["uri"] if ls.last_accepted else None,
        },
    }
    get = params.get if isinstance(params, dict) else (lambda k: getattr(params, k, None))
    if get("prompt"):  # the last prompt the model saw (benchmarks, bug reports)
        out["last_prompt"] = ls.engine.last_prompt
    uri = get("uri")
    doc = ls.docs.get(uri) if isinstance(uri, str) else None
    if doc is not None:  # what the server believes the document is (for tests and bug reports)
        out["document"] = {"uri": doc.uri, "version": doc.version, "language": doc.language_id,
                           "chars": len(doc.text), "lines": len(doc.line_starts()),
                           "text": doc.text if len(doc.text) <= 100_000 else None}
    return out


def register(server: Sc2Server) -> None:
    server.feature(STATUS)(status)
