"""The VS Code extension declares every server setting, as the server defines it.

VS Code only sends what its manifest declares (src/settings.ts reads the keys from package.json),
so a setting missing there cannot be set from the Settings UI at all. Each server field must be
there under its camelCase name with the server's default, type, range and choices; everything
else in the manifest is one of the client's own settings.
"""

from __future__ import annotations

import collections.abc
import json
import re
import typing
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from sc2lsp import config
from sc2lsp.config import Settings, camel_case

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "editors/vscode/package.json"
SETTINGS_TS = ROOT / "editors/vscode/src/settings.ts"
JSON_TYPES = {bool: "boolean", int: "integer", str: "string"}


def _properties() -> dict[str, dict]:
    props = json.loads(MANIFEST.read_text())["contributes"]["configuration"]["properties"]
    assert all(k.startswith("sc2lsp.") for k in props)
    return {k.removeprefix("sc2lsp."): v for k, v in props.items()}


def _client_keys() -> set[str]:
    m = re.search(r"CLIENT_KEYS[^=]*=\s*new Set\(\[([^\]]*)\]\)", SETTINGS_TS.read_text())
    assert m, "settings.ts no longer declares CLIENT_KEYS as a Set literal"
    return set(re.findall(r'"([^"]+)"', m.group(1)))


def _default(f) -> object:
    value = f.default if f.default is not MISSING else f.default_factory()
    return list(value) if isinstance(value, tuple) else value


def _json_type(f) -> str:
    hint = typing.get_type_hints(Settings)[f.name]
    origin = typing.get_origin(hint) or hint
    if origin is tuple:
        return "array"
    if origin in (dict, collections.abc.Mapping):
        return "object"
    return JSON_TYPES[origin]


@pytest.mark.parametrize("f", fields(Settings), ids=lambda f: f.name)
def test_every_server_setting_is_declared_with_its_default_type_and_bounds(f):
    props = _properties()
    key = camel_case(f.name)
    assert key in props, f"sc2lsp.{key} is missing from editors/vscode/package.json"
    decl = props[key]
    assert decl["type"] == _json_type(f)
    assert decl["default"] == _default(f), f"sc2lsp.{key}: the default differs from sc2lsp/config.py"
    lo, hi = config._RANGES.get(f.name, (None, None))
    assert decl.get("minimum") == lo and decl.get("maximum") == hi, f"sc2lsp.{key}: range differs"
    choices = config._CHOICES.get(f.name)
    assert (sorted(decl["enum"]) if "enum" in decl else None) == (sorted(choices) if choices else None)
    assert decl.get("description", "").strip(), f"sc2lsp.{key} has no description"


def test_the_manifest_declares_nothing_else_than_server_and_client_settings():
    server = {camel_case(f.name) for f in fields(Settings)}
    client = _client_keys()
    assert not server & client
    assert set(_properties()) == server | client


def test_the_extension_sends_the_keys_it_reads_from_its_manifest():
    src = SETTINGS_TS.read_text()
    assert 'require("../package.json")' in src
    assert re.search(r"SERVER_KEYS[^=]*=\s*Object\.keys\(manifest\.contributes\.configuration\.properties\)", src)
    # no second, hand-kept list of names that could drift from the manifest
    assert '"maxTokens"' not in src and '"contextBudget"' not in src
