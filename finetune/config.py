"""Dataclass configs with defaults, loaded from TOML presets plus ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence, TypeVar

from .paths import preset_path, project_path, resolve_preset_paths

T = TypeVar("T")


class ConfigError(ValueError):
    pass


class TrainError(ConfigError):
    """A problem with the inputs of a LoRA run (the message says which and what to do)."""


@dataclass
class LoopConfig:
    """The fields of the one training loop (``loop.run_steps``), shared by every recipe; a recipe
    subclasses it, adds its own fields and may change defaults."""

    data: str = str(project_path("runs/stdlib-data"))  #: packed rows (``finetune prepare-stdlib``/``prepare``)
    out: str = str(project_path("runs/sc2-tiny"))  #: checkpoints, metrics and the final model go here
    batch_size: int = 8  #: sequences per micro-batch
    grad_accum: int = 1  #: micro-batches per optimizer step
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  #: cosine decays to lr * this
    warmup_steps: int = 100
    max_steps: int = 1000
    max_minutes: float = 0.0  #: stop (and save) after this much wall time; 0 = no limit
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 100  #: held-out loss every N steps (and at the end)
    eval_batches: int = 16  #: batches of held-out rows per periodic evaluation
    save_every: int = 50
    log_every: int = 10
    seed: int = 0
    threads: int = 0  #: torch threads; 0 = all cores
    dtype: str = "float32"  #: float32 or bfloat16 (autocast); ``dtypes`` lists what a recipe allows
    loss_mask: bool = True  #: when DATA has ``train_mask.npy`` (``prepare samples=server``), only its tokens are in the loss

    #: the error class of this recipe's config problems, and its allowed dtypes
    error = ConfigError
    dtypes = ("float32", "bfloat16")

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.grad_accum < 1 or self.max_steps < 1:
            raise self.error("batch_size, grad_accum and max_steps must be >= 1")
        if not 0 <= self.min_lr_ratio <= 1:
            raise self.error("min_lr_ratio must be within [0, 1]")
        if self.dtype not in self.dtypes:
            raise self.error(f"dtype must be {' or '.join(self.dtypes)}, not {self.dtype!r}")


@dataclass
class PretrainConfig(LoopConfig):
    """Training all weights of a Starcoder2 model, from scratch or continued (loop defaults)."""

    shape: str = "sc2-tiny"  #: a key of ``finetune.model.SHAPES``
    init_from: str = ""  #: an HF checkpoint directory to continue from ("" = from scratch)


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    typ = field.type if isinstance(field.type, type) else {"int": int, "float": float, "str": str, "bool": bool}.get(
        str(field.type), None
    )
    if typ is None or isinstance(value, typ):
        return value
    if typ is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
    try:
        return typ(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field.name}: expected {typ.__name__}, got {value!r}") from None


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r} for {cls.__name__}; known keys: {', '.join(known)}")
    return cls(**{k: _coerce(known[k], v) for k, v in values.items()})


def load(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """``cls`` from a TOML file (optional) with ``key=value`` strings applied on top.

    ``path`` may be a file, a project path or a preset name (``lora-sc2-tiny``); relative paths in the
    preset are project paths (``finetune.paths``); those of the overrides are the user's (the cwd)."""
    values: dict[str, Any] = {}
    if path:
        path = preset_path(path)
        try:
            values.update(resolve_preset_paths(tomllib.loads(Path(path).read_text())))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
    for item in overrides:
        key, sep, value = item.removeprefix("--").partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not key=value")
        values[key.replace("-", "_")] = value
    return from_dict(cls, values)
