"""models.toml entries for a model served by another process (a team inference server).

::

    [models.team-3b]
    description = "StarCoder2-3B on the team's GPU box"
    endpoint    = "https://gpu-box.internal:8080"   # the server's base URL
    api         = "llama-server"                    # or "openai" (vLLM, TGI, Ollama, llama-cpp-python)
    model       = "starcoder2-3b"                   # the name the server serves it under (optional)
    api_key_env = "TEAM_LLM_KEY"                    # optional: the environment variable with the key
    ca_bundle   = "/etc/ssl/team-ca.pem"            # optional: a private CA, relative to this file
    context_length = 4096                           # optional (llama-server reports its own)
    tokenizer   = "starcoder2-3b"                   # optional: a local entry or .gguf/tokenizer.json
                                                    # to count tokens when the server cannot

The key itself never goes into the file: ``api_key`` is rejected with a message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

REMOTE_KEYS = {"description", "license", "endpoint", "api", "model", "api_key_env", "ca_bundle",
               "context_length", "tokenizer", "attribution_index"}
APIS = ("openai", "llama-server")


@dataclass(frozen=True)
class RemoteSpec:
    endpoint: str
    api: str = "openai"
    model: str | None = None
    api_key_env: str | None = None
    ca_bundle: Path | None = None
    tokenizer: str | None = None  #: a local entry name or a file path (absolute)


def parse_remote(w: Any, name: str, t: dict, base: Path) -> tuple[RemoteSpec, dict[str, Any]]:
    """The remote part of an entry and the ModelEntry fields it implies (``w`` is the registry's
    ``_Where`` error helper)."""
    key = f"models.{name}"
    if "api_key" in t:
        raise w.error(f"{key}.api_key", "never put a key in models.toml: put it in an environment variable "
                                        "and name that variable in `api_key_env`")
    w.unknown(t, REMOTE_KEYS, key)
    endpoint = w.string(t, "endpoint", key, required=True)
    if not endpoint.startswith(("http://", "https://")):
        raise w.error(f"{key}.endpoint", f"must be an http:// or https:// URL, got {endpoint!r}")
    api = w.string(t, "api", key) or "openai"
    if api not in APIS:
        raise w.error(f"{key}.api", f"must be one of {', '.join(APIS)}, got {api!r}")
    ctx = t.get("context_length", 2048)
    if not isinstance(ctx, int) or isinstance(ctx, bool) or ctx <= 0:
        raise w.error(f"{key}.context_length", "must be a positive integer")
    ca = w.string(t, "ca_bundle", key)
    tok = w.string(t, "tokenizer", key)
    if tok and ("/" in tok or tok.endswith((".gguf", ".json"))):
        tok = str(base / Path(tok).expanduser())
    spec = RemoteSpec(endpoint=endpoint, api=api, model=w.string(t, "model", key),
                      api_key_env=w.string(t, "api_key_env", key),
                      ca_bundle=(base / Path(ca).expanduser()) if ca else None, tokenizer=tok)
    fields = {"description": w.string(t, "description", key, required=True),
              "license": w.string(t, "license", key) or "", "context_length": ctx}
    return spec, fields
