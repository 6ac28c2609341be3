"""Atomic, resumable checkpoints: ``ckpt.pt`` (model, optimizer, step, RNG) written by rename."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def save(path: str | Path, state: dict[str, Any]) -> None:
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: str | Path) -> dict[str, Any] | None:
    import torch

    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
