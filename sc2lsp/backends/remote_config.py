"""Which remote backend a set of settings asks for (``None``: the local llama.cpp backend).

A model is remote when ``settings.model`` names a models.toml entry with an ``endpoint``, or when
the ``endpoint`` setting is set (then ``model`` is the name the server serves it under). The
settings ``endpoint``, ``api``, ``apiKeyEnv`` and ``caBundle`` override the entry's.

Token counting without the server's help uses a local tokenizer: the entry's ``tokenizer``, or the
local GGUF of the model's own name when it is a downloaded models.toml entry or a ``.gguf`` path.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ..config import Settings
from ..errors import UserError
from .remote import RemoteBackend, RemoteConfig

#: one id per server process: the editor session (llama-server keeps its slot for it)
SESSION = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remote_config(settings: Settings, registry=None) -> RemoteConfig | None:
    from ..models.registry import load_registry, looks_like_path

    entry = None
    if not looks_like_path(settings.model):
        reg = registry or load_registry()
        entry = reg.models.get(settings.model)
    spec = entry.remote if entry is not None else None
    if spec is None and not settings.endpoint:
        return None
    api = settings.api if settings.api != "auto" else (spec.api if spec else "openai")
    served = spec.model if spec else Path(settings.model).stem if looks_like_path(settings.model) else settings.model
    return RemoteConfig(
        endpoint=settings.endpoint or spec.endpoint,
        api=api,
        model=served,
        api_key_env=settings.api_key_env or (spec.api_key_env if spec else None) or None,
        ca_bundle=settings.ca_bundle or (str(spec.ca_bundle) if spec and spec.ca_bundle else None),
        n_ctx=min(settings.context_length, entry.context_length) if spec else settings.context_length,
        tokenizer=_tokenizer(settings.model, spec.tokenizer if spec else None, registry),
        session=SESSION,
    )


def _tokenizer(model: str, declared: str | None, registry) -> str | None:
    """A local tokenizer file for counting: the declared one, else the model's own GGUF if present."""
    from ..models.registry import load_registry, looks_like_path, resolve

    name = declared or model
    if looks_like_path(name) or name.endswith(".json"):
        return name if os.path.isfile(os.path.expanduser(name)) else None
    try:
        reg = registry or load_registry()
        entry = reg.models.get(name)
        if entry is None or entry.remote is not None:
            return None
        return str(resolve(name, registry=reg))
    except UserError:
        return None  # not downloaded: the server or the estimate counts


def make_remote(cfg: RemoteConfig) -> RemoteBackend:
    if cfg.api == "llama-server":
        from .llama_server import LlamaServerBackend

        return LlamaServerBackend(cfg)
    from .openai_api import OpenAIBackend

    return OpenAIBackend(cfg)
