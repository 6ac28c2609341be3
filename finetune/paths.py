"""Where the training tools' defaults live: never the current directory.

* project files (``models/sc2-tiny/hf``, ``finetune/configs/*.toml``) resolve against the installed
  project (the directory holding ``finetune/``), so ``python -m finetune prepare REPO`` works from
  any directory;
* what a user's run writes (data, LoRA runs, tune work directories) goes to the user's cache,
  ``$SC2LSP_RUNS`` or ``$XDG_CACHE_HOME/sc2lsp/runs`` (``~/.cache/sc2lsp/runs``);
* the developer recipes that rebuild sc2-tiny (``prepare-stdlib``, ``pretrain``, ``export-tiny``)
  keep their ``runs/...`` paths, resolved against the project.

Paths the user types (``--out data``, ``base=dir``) are the user's: relative to the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from sc2lsp.fileio import user_cache_dir

PROJECT = Path(__file__).resolve().parents[1]
CONFIGS = PROJECT / "finetune" / "configs"


def project_path(rel: str | os.PathLike) -> Path:
    """``rel`` inside the installed project (an absolute path is returned as is)."""
    p = Path(rel).expanduser()
    return p if p.is_absolute() else PROJECT / p


def runs_dir() -> Path:
    """The user's directory for training runs: ``$SC2LSP_RUNS`` or ``$XDG_CACHE_HOME/sc2lsp/runs``."""
    return user_cache_dir("runs", "SC2LSP_RUNS")

def user_run(name: str) -> str:
    """The default location of a user's run ``name`` (a string, as config fields are)."""
    return str(runs_dir() / name)


def preset_path(spec: str | os.PathLike) -> Path:
    """A preset given as a path (as typed: relative to the current directory), a project-relative path
    (``finetune/configs/lora-sc2-tiny.toml``) or a bare name (``lora-sc2-tiny``)."""
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    for candidate in (project_path(p), CONFIGS / p, CONFIGS / f"{p}.toml"):
        if candidate.is_file():
            return candidate
    return p  # the caller reports it as missing


#: config keys that hold paths; relative values in a preset file are project paths
PATH_KEYS = ("base", "data", "out", "tokenizer", "init_from", "root")


def resolve_preset_paths(values: dict) -> dict:
    """Relative path values of a preset (shipped with the project) -> absolute project paths. A value
    without a slash (``base = "sc2-tiny"``) is a model name and stays as it is."""
    out = dict(values)
    for k in PATH_KEYS:
        v = out.get(k)
        if isinstance(v, str) and "/" in v and not Path(v).expanduser().is_absolute():
            out[k] = str(project_path(v))
    return out
