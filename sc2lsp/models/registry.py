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

import dataclasses
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from .remote_entry import RemoteSpec, parse_remote

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
QUANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
SHA256_RE = re.compile(r"[0-9a-f]{64}")

TOP_KEYS = {"default", "models"}
ENTRY_KEYS = {
    "description", "license", "context_length", "default_quant", "repo", "revision", "hf_checkpoint",
    "hf_repo", "hf_revision", "quants", "attribution_index",
}
#: keys of older registries that serving never read: every entry is a StarCoder2 model, whose FIM
#: tokens and stop strings are ``sc2lsp.core.tokens``'s (the prompt and training format's)
RETIRED_KEYS = ("stop", "tokens")
#: what ``models pull NAME --checkpoint`` fetches of ``hf_repo``: weights, config and tokenizer files
CHECKPOINT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json",
                       "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                       "merges.txt", "added_tokens.json")
#: keys of an adapter entry: a LoRA adapter GGUF served on another entry (its ``base``)
ADAPTER_KEYS = {"description", "license", "base", "lora", "lora_scale"}
QUANT_KEYS = {"file", "path", "size", "size_approx", "sha256"}


@dataclass(frozen=True)
class Quant:
    name: str
    file: str | None = None  #: file name in the entry's hub repo
    path: Path | None = None  #: or a local file (absolute, resolved against the declaring models.toml)
    size: int | None = None
    size_approx: bool = False
    sha256: str | None = None

    @property
    def exact_size(self) -> int | None:
        """The size to check a file against (None when unknown or only approximate)."""
        return None if self.size_approx else self.size


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    license: str
    context_length: int
    default_quant: str
    quants: dict[str, Quant]
    source: Path  #: the models.toml that declared this entry
    repo: str | None = None
    revision: str = "main"
    hf_checkpoint: Path | None = None
    hf_repo: str | None = None  #: hub repository of the safetensors checkpoint (``models pull NAME --checkpoint``)
    hf_revision: str = "main"
    #: attribution indexes of the model's training corpus (absolute; resolved against ``source``'s directory)
    attribution_index: tuple[Path, ...] = ()
    base: str | None = None  #: adapter entries: the entry whose GGUF the adapter is applied to
    lora: Path | None = None  #: adapter entries: the LoRA adapter GGUF
    lora_scale: float = 1.0  #: adapter entries: llama.cpp's adapter scale (1.0 = as trained)
    #: remote entries: a model served by another process (``sc2lsp.models.remote_entry``)
    remote: "RemoteSpec | None" = None

    def quant(self, name: str | None = None) -> Quant:
        """The named quant (case-insensitive), or the default one; unknown names list the known ones."""
        if name is None:
            return self.quants[self.default_quant]
        for q in self.quants.values():
            if q.name.lower() == name.lower():
                return q
        raise UserError(f"model {self.name} has no quant {name!r}; known: {', '.join(self.quants)}")

    def pull_command(self, quant: Quant) -> str:
        extra = "" if quant.name == self.default_quant else f" --quant {quant.name}"
        return f"sc2lsp models pull {self.name}{extra}"


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


class _Where:
    """Formats schema errors as ``FILE: KEY.PATH: problem``."""

    def __init__(self, file: Path):
        self.file = file

    def error(self, key: str, problem: str) -> UserError:
        return UserError(f"{self.file}: {key}: {problem}")

    def table(self, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {_show(value)}")
        return value

    def unknown(self, table: dict, allowed: set[str] | tuple[str, ...], key: str) -> None:
        for k in table:
            if k not in allowed:
                prefix = f"{key}.{k}" if key else k
                raise self.error(prefix, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def string(self, table: dict, k: str, key: str, *, required: bool = False, pattern: re.Pattern | None = None):
        if k not in table:
            if required:
                raise self.error(f"{key}.{k}", "missing (required)")
            return None
        v = table[k]
        if not isinstance(v, str) or not v.strip():
            raise self.error(f"{key}.{k}", f"must be a non-empty string, got {_show(v)}")
        if pattern is not None and not pattern.fullmatch(v):
            raise self.error(f"{key}.{k}", f"invalid value {v!r} (expected {pattern.pattern})")
        return v


def _show(v: Any) -> str:
    return f"{type(v).__name__} {v!r}" if not isinstance(v, dict) else "a table"


def parse_models_toml(path: Path) -> tuple[str | None, dict[str, ModelEntry]]:
    """Parse and validate one models.toml; returns its ``default`` (or None) and its entries."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"models file not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: invalid TOML: {e}") from None
    w = _Where(path)
    w.unknown(data, TOP_KEYS, "")
    default = w.string(data, "default", "(top level)") if "default" in data else None
    models = w.table(data.get("models", {}), "models")
    entries = {}
    for name, raw in models.items():
        if not NAME_RE.fullmatch(name):
            raise w.error(f"models.{name}", f"invalid model name (expected {NAME_RE.pattern})")
        table = w.table(raw, f"models.{name}")
        parse = (_parse_adapter_entry if "base" in table or "lora" in table
                 else _parse_remote_entry if "endpoint" in table else _parse_entry)
        entries[name] = parse(w, name, table, path.parent)
    return default, entries


def _parse_adapter_entry(w: _Where, name: str, t: dict, base: Path) -> ModelEntry:
    """``base`` + ``lora``: an adapter on another entry. Everything else (quants, context length,
    checkpoint) comes from the base entry when the registry is assembled (``_link_adapters``)."""
    key = f"models.{name}"
    for k in t:
        if k not in ADAPTER_KEYS:
            raise w.error(f"{key}.{k}", f"unknown key in an adapter entry, which takes everything else from its base "
                                        f"(allowed: {', '.join(sorted(ADAPTER_KEYS))})")
    base_name = w.string(t, "base", key, required=True, pattern=NAME_RE)
    lora = w.string(t, "lora", key, required=True)
    if base_name == name:
        raise w.error(f"{key}.base", "an adapter entry cannot be its own base")
    scale = t.get("lora_scale", 1.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale <= 10:
        raise w.error(f"{key}.lora_scale", f"must be a number in (0, 10], got {_show(scale)}")
    return ModelEntry(
        name=name, description=w.string(t, "description", key, required=True),
        license=w.string(t, "license", key) or "", context_length=1, default_quant="", quants={}, source=w.file,
        base=base_name, lora=base / Path(lora).expanduser(), lora_scale=float(scale),
    )


def _parse_remote_entry(w: _Where, name: str, t: dict, base: Path) -> ModelEntry:
    """``endpoint`` (+ ``api``, ``model``, ``api_key_env``...): a model another process serves."""
    spec, f = parse_remote(w, name, t, base)
    attribution = tuple(base / Path(x).expanduser() for x in t.get("attribution_index", []) if isinstance(x, str))
    return ModelEntry(name=name, default_quant="", quants={}, source=w.file, remote=spec,
                      attribution_index=attribution, **f)


def _link_adapters(models: dict[str, ModelEntry]) -> None:
    """Fill each adapter entry from its base entry (after the project and user files are merged)."""
    for name, e in list(models.items()):
        if e.base is None:
            continue
        key = f"models.{name}.base"
        b = models.get(e.base)
        if b is None:
            raise UserError(f"{e.source}: {key}: {e.base!r} is not a declared model ({', '.join(sorted(models))})")
        if b.base is not None:
            raise UserError(f"{e.source}: {key}: {e.base!r} is itself an adapter entry; name a model with quants")
        models[name] = dataclasses.replace(
            b, name=name, description=e.description, license=e.license or b.license, source=e.source,
            base=b.name, lora=e.lora, lora_scale=e.lora_scale,
        )


def _parse_entry(w: _Where, name: str, t: dict, base: Path) -> ModelEntry:
    key = f"models.{name}"
    for k in RETIRED_KEYS:
        if k in t:
            raise w.error(f"{key}.{k}", "is no longer read: sc2lsp serves StarCoder2 models, whose FIM tokens and "
                                        "stop strings are fixed (sc2lsp/core/tokens.py); remove the key")
    w.unknown(t, ENTRY_KEYS, key)
    description = w.string(t, "description", key, required=True)
    license_ = w.string(t, "license", key, required=True)
    ctx = t.get("context_length")
    if ctx is None:
        raise w.error(f"{key}.context_length", "missing (required)")
    if not isinstance(ctx, int) or isinstance(ctx, bool) or ctx <= 0:
        raise w.error(f"{key}.context_length", f"must be a positive integer, got {_show(ctx)}")
    repo = w.string(t, "repo", key, pattern=REPO_RE)
    revision = w.string(t, "revision", key) or "main"
    ckpt = w.string(t, "hf_checkpoint", key)
    hf_repo = w.string(t, "hf_repo", key, pattern=REPO_RE)
    hf_revision = w.string(t, "hf_revision", key) or "main"
    attribution: tuple[Path, ...] = ()
    if "attribution_index" in t:
        a = t["attribution_index"]
        if isinstance(a, str):
            a = [a]
        if not isinstance(a, list) or not all(isinstance(x, str) and x.strip() for x in a):
            raise w.error(f"{key}.attribution_index", f"must be a list of index directories, got {_show(a)}")
        attribution = tuple(base / Path(x).expanduser() for x in a)
    quants_raw = w.table(t.get("quants", {}), f"{key}.quants")
    if not quants_raw:
        raise w.error(f"{key}.quants", "at least one quant is required ([models.NAME.quants.Q4_K_M] ...)")
    quants = {qn: _parse_quant(w, f"{key}.quants.{qn}", qn, w.table(q, f"{key}.quants.{qn}"), base, repo)
              for qn, q in quants_raw.items()}
    default_quant = w.string(t, "default_quant", key, required=True)
    if default_quant not in quants:
        raise w.error(f"{key}.default_quant", f"{default_quant!r} is not one of its quants ({', '.join(quants)})")
    return ModelEntry(
        name=name, description=description, license=license_, context_length=ctx, default_quant=default_quant,
        quants=quants, source=w.file, repo=repo, revision=revision,
        hf_checkpoint=(base / ckpt) if ckpt else None, hf_repo=hf_repo, hf_revision=hf_revision,
        attribution_index=attribution,
    )


def _parse_quant(w: _Where, key: str, qn: str, t: dict, base: Path, repo: str | None) -> Quant:
    if not QUANT_RE.fullmatch(qn):
        raise w.error(key, f"invalid quant name (expected {QUANT_RE.pattern})")
    w.unknown(t, QUANT_KEYS, key)
    file = w.string(t, "file", key)
    path = w.string(t, "path", key)
    if (file is None) == (path is None):
        raise w.error(key, "needs exactly one of `file` (in the hub repo) or `path` (a local file)")
    if file is not None and repo is None:
        raise w.error(key.rsplit(".quants.", 1)[0] + ".repo",
                      f"missing: quant {qn} has a `file`, so the entry needs `repo`")
    if file is not None and (file.startswith("/") or ".." in file.split("/")):
        raise w.error(f"{key}.file", f"must be a path inside the repo, got {file!r}")
    size = t.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise w.error(f"{key}.size", f"must be a positive integer (bytes), got {_show(size)}")
    approx = t.get("size_approx", False)
    if not isinstance(approx, bool):
        raise w.error(f"{key}.size_approx", f"must be true or false, got {_show(approx)}")
    if approx and size is None:
        raise w.error(f"{key}.size_approx", "given without `size`")
    sha = t.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not SHA256_RE.fullmatch(sha.lower())):
        raise w.error(f"{key}.sha256", f"must be 64 hexadecimal digits, got {_show(sha)}")
    return Quant(name=qn, file=file, path=(base / Path(path).expanduser()) if path else None, size=size,
                 size_approx=approx, sha256=sha.lower() if sha else None)


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
    _link_adapters(models)
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
