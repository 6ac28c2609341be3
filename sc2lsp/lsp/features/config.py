"""Settings: ``workspace/didChangeConfiguration`` with pushed settings, or a pull of the ``sc2lsp``
section through ``workspace/configuration`` (VS Code sends null settings). Bad values become a
warning each and the field's default (``sc2lsp.config.parse_settings``)."""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any

from lsprotocol import types

from ...config import Settings, camel_case, parse_settings
from ..language_server import Sc2Server

log = logging.getLogger(__name__)


def apply_settings(ls: Sc2Server, raw: Any) -> None:
    settings, problems = parse_settings(raw, ls.settings)
    for p in problems:
        ls.notify_user("warning", f"sc2lsp: {p}")
    use_settings(ls, settings)


def use_settings(ls: Sc2Server, settings: Settings) -> None:
    """Make ``settings`` the server's: the engine reloads the model only if a setting it depends on
    changed, and attribution indexes no longer in use (another ``attributionIndex``, another
    model's linked indexes) are closed."""
    changed = {camel_case(f.name): getattr(settings, f.name) for f in fields(Settings)
               if getattr(settings, f.name) != getattr(ls.settings, f.name)}
    if changed:  # no secret among them: apiKeyEnv is a variable's name, endpoints carry no credentials
        log.info("settings changed: %s", changed)
    ls.settings = settings
    ls.workspaces.enabled = settings.repo_context
    ls.workspaces.start()  # repoContext turned on: the folders' indexes (none before ``initialized``)
    ls.engine.configure(settings)
    ls.attribution.forget(keep=ls.attribution.indexes(settings.attribution_index, settings.model))


async def did_change_configuration(ls: Sc2Server, params: types.DidChangeConfigurationParams) -> None:
    raw = params.settings
    ws = ls.client_capabilities.workspace if ls.client_capabilities else None
    if (not isinstance(raw, dict) or not raw) and ws is not None and ws.configuration:
        # pull model (VS Code sends null settings): ask for the "sc2lsp" section
        items = [types.ConfigurationItem(section="sc2lsp")]
        result = await ls.workspace_configuration_async(types.ConfigurationParams(items=items))
        raw = result[0] if result else None
    if raw is not None:
        apply_settings(ls, raw)


def register(server: Sc2Server) -> None:
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
