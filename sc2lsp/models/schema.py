"""The schema of ``models.toml`` (documented in its header comments): the entry types and the
parser, which validates every key and names the file, the entry and the key of an error.
``registry.load_registry`` merges the project's file with the user's through it."""

from __future__ import annotations

import dataclasses
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


def link_adapters(models: dict[str, ModelEntry]) -> None:
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
