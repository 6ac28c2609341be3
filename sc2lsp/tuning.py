"""How ``sc2lsp tune`` and the language server's ``sc2lsp.tune`` start the fine-tuning pipeline:
a child process ``python -m finetune tune`` with this interpreter (``sc2lsp`` never imports
``finetune`` nor torch), and whether the training extras are installed."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from .errors import UserError

#: what the pipeline imports beyond sc2lsp's own dependencies (the ``[train]`` extras)
TRAIN_MODULES = ("torch", "transformers", "peft", "safetensors", "datasketch", "matplotlib")
PROJECT = Path(__file__).resolve().parents[1]


def install_hint() -> str:
    where = f"{PROJECT}" if (PROJECT / "pyproject.toml").is_file() else "sc2lsp"
    return f"{sys.executable} -m pip install -e '{where}[train]'" if where != "sc2lsp" else \
        f"{sys.executable} -m pip install 'sc2lsp[train]'"


def missing_extras() -> list[str]:
    return [m for m in TRAIN_MODULES if importlib.util.find_spec(m) is None]


def check_extras() -> None:
    missing = missing_extras()
    if missing or importlib.util.find_spec("finetune") is None:
        raise UserError(f"fine-tuning needs the training extras (missing: {', '.join(missing) or 'finetune'}); "
                        f"install them with `{install_hint()}`")


def child_command(repo: str | Path, *, base: str | None = None, name: str | None = None, force: bool = False,
                  extra: list[str] = ()) -> list[str]:
    """The command line of the pipeline's child process (same interpreter)."""
    cmd = [sys.executable, "-m", "finetune", "tune", str(repo)]
    if base:
        cmd += ["--base", base]
    if name:
        cmd += ["--name", name]
    if force:
        cmd.append("--force")
    return cmd + list(extra)


def child_env() -> dict:
    """The child sees the same packages as this process (``finetune`` next to ``sc2lsp``)."""
    env = dict(os.environ)
    if importlib.util.find_spec("finetune") is not None:
        root = str(Path(importlib.util.find_spec("finetune").origin).parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env
