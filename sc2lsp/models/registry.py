"""The model registry: ``models.toml`` (schema in its header comments) merged with the user's file.

``load_registry()`` reads the project's ``models.toml`` (next to the package, or
``$SC2LSP_MODELS_TOML``) and ``~/.config/sc2lsp/models.toml`` (``$XDG_CONFIG_HOME`` respected);
user entries add models or replace them by name. Every key is validated; an error names the file,
the entry and the key. ``resolve(name_or_path, quant)`` turns a model name or a ``.gguf`` path into
a local file, or says how to get it (``sc2lsp models pull NAME``). An adapter entry (``base`` +
``lora``) is its base entry plus a LoRA adapter GGUF: ``resolve`` gives the base's GGUF and
``resolve_files`` both files (what the llama.cpp backend loads).

``sc2lsp models list [--json]`` shows every entry and quant, its size and whether (and where) it is
present: local ``path`` quants on disk, hub quants in the Hugging Face cache (huggingface_hub's
``try_to_load_from_cache``, which honours ``HF_HOME``/``HF_HUB_CACHE``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .schema import (  # noqa: F401  (re-exported: the registry's types and parser)
    CHECKPOINT_PATTERNS,
    ModelEntry,
    Quant,
    link_adapters,
    parse_models_toml,
)


@dataclass(frozen=True)
class Registry:
    models: dict[str, ModelEntry]
    default: str
    sources: tuple[Path, ...]

    def get(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            raise UserError(
                f"unknown model {name!r}; known models: {', '.join(sorted(self.models))} "
                f"(or give a path to a .gguf file; add models in {user_models_toml()})"
            ) from None


# --------------------------------------------------------------------------- loading


def project_models_toml() -> Path:
    env = os.environ.get("SC2LSP_MODELS_TOML")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "models.toml"


def user_models_toml() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "sc2lsp" / "models.toml"


def load_registry(project: Path | None = None, user: Path | None = None) -> Registry:
    """The project's models.toml merged with the user's (user entries add or replace by name)."""
    project = project or project_models_toml()
    user = user or user_models_toml()
    if not project.is_file():
        raise UserError(f"the model registry {project} is missing (SC2LSP_MODELS_TOML can point to another models.toml)")
    default, models = parse_models_toml(project)
    sources = [project]
    user_default = None
    if user.is_file():
        user_default, user_models = parse_models_toml(user)
        models.update(user_models)
        default = user_default or default
        sources.append(user)
    if not models:
        raise UserError(f"no models are declared in {', '.join(map(str, sources))}")
    link_adapters(models)
    if default is None:
        raise UserError(f"{project}: default: missing (name the model used when none is given)")
    if default not in models:
        where = user if user_default else project
        raise UserError(f"{where}: default: {default!r} is not a declared model ({', '.join(sorted(models))})")
    return Registry(models=models, default=default, sources=tuple(sources))


# --------------------------------------------------------------------------- lookup


def hf_cache_path(entry: ModelEntry, quant: Quant) -> Path | None:
    """Where the HF cache holds this hub quant (``snapshots/<commit>/<file>``), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(entry.repo, quant.file, revision=entry.revision)
    return Path(found) if isinstance(found, str) else None


def locate(entry: ModelEntry, quant: Quant) -> Path | None:
    """The local file of ``quant`` if it is present (a local path, or the HF cache), else None."""
    if quant.path is not None:
        return quant.path if quant.path.is_file() else None
    return hf_cache_path(entry, quant)


def size_problem(path: Path, quant: Quant) -> str | None:
    """A message if ``path`` does not have the exact size models.toml declares (cheap: one stat)."""
    expected = quant.exact_size
    if expected is None:
        return None
    actual = path.stat().st_size
    return None if actual == expected else f"{path} has {actual} bytes, models.toml says {expected}"


def looks_like_path(s: str) -> bool:
    return s.endswith(".gguf") or "/" in s or os.sep in s or s.startswith(("~", "."))


def resolve(name_or_path: str | os.PathLike | None = None, quant: str | None = None,
            registry: Registry | None = None) -> Path:
    """A local GGUF for a model name (default model if None) or a path; UserError says how to get it."""
    if name_or_path is not None and (isinstance(name_or_path, os.PathLike) or looks_like_path(name_or_path)):
        p = Path(name_or_path).expanduser()
        if not p.exists():
            raise UserError(f"model file not found: {p}")
        if not p.is_file():
            raise UserError(f"{p} is not a file (expected a .gguf model)")
        return p
    reg = registry or load_registry()
    entry = reg.get(name_or_path or reg.default)
    if entry.remote is not None:
        raise UserError(f"model {entry.name} is served by {entry.remote.endpoint} (declared in {entry.source}); "
                        f"there is no local file to load or download")
    q = entry.quant(quant)
    found = locate(entry, q)
    if found is None:
        if q.path is not None:
            raise UserError(
                f"model {entry.name} ({q.name}) is missing: {q.path} does not exist "
                f"(declared in {entry.source}; rebuild or restore that file)"
            )
        raise UserError(
            f"model {entry.name} ({q.name}, {format_size(q)}) is not downloaded yet; "
            f"run `{entry.pull_command(q)}`"
        )
    problem = size_problem(found, q)
    if problem:
        raise UserError(f"model {entry.name} ({q.name}) looks incomplete: {problem}; "
                        f"run `{entry.pull_command(q)}` again")
    return found


def indexes_for_model(name_or_path: str | os.PathLike, registry: Registry | None = None) -> tuple[Path, ...]:
    """The attribution indexes linked to a model: its entry's ``attribution_index`` for a name; for a
    ``.gguf`` path, those of the entry with a local quant at that path (() when none does)."""
    reg = registry or load_registry()
    if isinstance(name_or_path, os.PathLike) or looks_like_path(str(name_or_path)):
        target = os.path.realpath(Path(name_or_path).expanduser())
        for entry in reg.models.values():
            if any(q.path is not None and os.path.realpath(q.path) == target for q in entry.quants.values()):
                return entry.attribution_index
        return ()
    entry = reg.models.get(str(name_or_path))
    return entry.attribution_index if entry is not None else ()


@dataclass(frozen=True)
class ModelFiles:
    """What llama.cpp loads for a model: the GGUF and, for an adapter entry, the LoRA adapter GGUF."""

    path: Path
    lora_path: Path | None = None
    lora_scale: float = 1.0


def resolve_files(name_or_path: str | os.PathLike | None = None, quant: str | None = None,
                  registry: Registry | None = None) -> ModelFiles:
    """``resolve`` plus the adapter of an adapter entry (``base`` + ``lora`` in models.toml).

    A path, or an entry without an adapter, gives ``ModelFiles(path)``. A missing adapter file is a
    UserError naming it and the models.toml that declares it.
    """
    if name_or_path is not None and (isinstance(name_or_path, os.PathLike) or looks_like_path(name_or_path)):
        return ModelFiles(resolve(name_or_path, quant, registry))
    reg = registry or load_registry()
    entry = reg.get(name_or_path or reg.default)
    path = resolve(entry.name, quant, reg)
    if entry.lora is None:
        return ModelFiles(path)
    if not entry.lora.is_file():
        raise UserError(f"model {entry.name}: its LoRA adapter {entry.lora} does not exist (declared in "
                        f"{entry.source}; run `python -m finetune export RUN --adapter` again)")
    return ModelFiles(path, entry.lora, entry.lora_scale)


def checkpoint_problem(directory: Path) -> str | None:
    """Why ``directory`` is not a complete safetensors checkpoint (None when it is): config.json,
    tokenizer.json and every weight file (``model.safetensors``, or all those the index names)."""
    for f in ("config.json", "tokenizer.json"):
        if not (directory / f).is_file():
            return f"{directory} has no {f}"
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return f"{index} is not a readable safetensors index"
        missing = sorted(s for s in shards if not (directory / s).is_file())
        return f"{directory} lacks {', '.join(missing[:3])}" if missing else None
    return None if (directory / "model.safetensors").is_file() else f"{directory} has no model.safetensors"


def cached_checkpoint(entry: ModelEntry) -> Path | None:
    """The snapshot directory of ``entry.hf_repo`` in the HF cache when it holds a complete checkpoint."""
    if entry.hf_repo is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(entry.hf_repo, "config.json", revision=entry.hf_revision)
    if not isinstance(found, str):
        return None
    snapshot = Path(found).parent
    return snapshot if checkpoint_problem(snapshot) is None else None


def hf_checkpoint(name: str | None = None, registry: Registry | None = None) -> Path:
    """The safetensors checkpoint directory of a model (for fine-tuning): its local ``hf_checkpoint``,
    or the ``hf_repo`` snapshot that ``sc2lsp models pull NAME --checkpoint`` put in the HF cache."""
    reg = registry or load_registry()
    entry = reg.get(name or reg.default)
    if entry.hf_checkpoint is not None:
        if not entry.hf_checkpoint.is_dir():
            raise UserError(f"model {entry.name}: checkpoint directory {entry.hf_checkpoint} does not exist")
        return entry.hf_checkpoint
    if entry.hf_repo is None:
        raise UserError(f"model {entry.name} has no hf_checkpoint or hf_repo in {entry.source}")
    found = cached_checkpoint(entry)
    if found is None:
        raise UserError(f"the checkpoint of {entry.name} ({entry.hf_repo}) is not downloaded yet; "
                        f"run `sc2lsp models pull {entry.name} --checkpoint`")
    return found


# --------------------------------------------------------------------------- `sc2lsp models list`


def format_size(quant: Quant, actual: int | None = None) -> str:
    n = quant.size if quant.size is not None else actual
    if n is None:
        return "?"
    text = f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
    return ("~" if quant.size_approx else "") + text


def short_path(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def describe(reg: Registry) -> list[dict]:
    """Every entry and quant with its local status (the data behind ``models list``)."""
    out = []
    for entry in reg.models.values():
        quants = []
        for q in entry.quants.values():
            found = locate(entry, q)
            problem = size_problem(found, q) if found else None
            quants.append({
                "quant": q.name,
                "default": q.name == entry.default_quant,
                "file": q.file,
                "size": q.size if q.size is not None else (found.stat().st_size if found else None),
                "size_exact": q.size is not None and not q.size_approx,
                "sha256": q.sha256,
                "present": found is not None and problem is None,
                "path": str(found) if found else None,
                "problem": problem,
            })
        out.append({
            "name": entry.name,
            "default": entry.name == reg.default,
            "description": entry.description,
            "license": entry.license,
            "context_length": entry.context_length,
            "repo": entry.repo,
            "revision": entry.revision if entry.repo else None,
            "hf_checkpoint": str(entry.hf_checkpoint) if entry.hf_checkpoint else None,
            "hf_repo": entry.hf_repo,
            "checkpoint_present": bool(entry.hf_checkpoint and entry.hf_checkpoint.is_dir())
            or cached_checkpoint(entry) is not None,
            "attribution_index": [str(p) for p in entry.attribution_index],
            "source": str(entry.source),
            "base": entry.base,
            "lora": str(entry.lora) if entry.lora else None,
            "endpoint": entry.remote.endpoint if entry.remote else None,
            "quants": quants,
        })
    return out
