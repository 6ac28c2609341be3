"""The language server's features, one module each; ``server.create_server`` registers them all.

Each module has module-level handlers taking the server as ``ls`` (readable and testable on
their own) and a ``register(server)`` that registers them with pygls. Document sync (didOpen,
didChange, didClose) is routed by ``protocol.Sc2Protocol`` to ``sync``'s handlers instead of
pygls's own workspace.
"""

from __future__ import annotations

from . import attribution, completion, config, lifecycle, models, stats, status, sync, tune

#: every feature module, in registration order
FEATURES = (lifecycle, config, sync, completion, status, attribution, models, stats, tune)
