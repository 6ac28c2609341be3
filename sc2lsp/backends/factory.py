"""``load_backend(settings)``: the one place a ``Backend`` is built from settings (the engine's
default ``backend_factory``, ``sc2lsp complete``, ``finetune eval`` and ``finetune export``'s
probes all come here). A second backend kind is chosen here."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from .base import Backend


def load_backend(settings: Settings, *, adapter: str | None = None) -> Backend:
    """The llama.cpp backend for ``settings.model`` (a models.toml name or a .gguf path; an adapter
    entry of models.toml loads its base GGUF with the LoRA adapter on top), or a remote backend
    when the model is served elsewhere (``endpoint`` setting or a models.toml remote entry). ``adapter``: a LoRA
    adapter GGUF (name or path) to apply instead of the entry's own."""
    from .remote_config import make_remote, remote_config

    remote = remote_config(settings) if not adapter else None
    if remote is not None:  # a model another process serves (a models.toml endpoint, or the setting)
        return make_remote(remote)
    from ..models.registry import resolve, resolve_files
    from .llama_cpp import LlamaCppBackend, LlamaSettings
    from .state_store import default_state_dir

    files = resolve_files(settings.model)
    if adapter:
        lora, scale = str(resolve(adapter)), 1.0
    else:
        lora, scale = (str(files.lora_path) if files.lora_path else None), files.lora_scale
    backend = LlamaCppBackend(
        Path(files.path),
        LlamaSettings(
            n_ctx=settings.context_length,
            n_threads=settings.threads,
            n_gpu_layers=settings.gpu_layers,
            state_cache_mb=settings.state_cache_mb,
            speculative={"on": True, "off": False}.get(settings.speculative),
            state_dir=str(default_state_dir()) if settings.state_disk_mb > 0 else None,
            state_disk_mb=settings.state_disk_mb,
            repack=settings.repack_weights,
            lora_path=lora,
            lora_scale=scale,
        ),
    )
    if settings.token_healing:  # on the worker thread, as part of loading: not on the first keystroke
        backend.pieces  # noqa: B018 - builds the vocabulary's piece table (one call per token)
    return backend
