"""Atomic, resumable checkpoints: ``ckpt.pt`` (model, optimizer, step, RNG) written by rename.

``save`` writes a unique temporary file next to the checkpoint, fsyncs it, renames it over the
old one and fsyncs the folder; any failure (a full disk makes torch raise ``RuntimeError``, not
``OSError``) removes the temporary file and leaves the last good checkpoint untouched, then
re-raises. ``load`` reads with ``torch.load(weights_only=True)``: tensors, numbers, strings and
containers only (plus ``SAFE_GLOBALS``), so a checkpoint file can never run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sc2lsp.fileio import atomic_replace


def _safe_globals() -> list:
    """Types a checkpoint may hold beyond weights_only's defaults (numpy scalars in counters)."""
    try:
        import numpy as np

        try:
            from numpy._core.multiarray import scalar
        except ImportError:  # numpy < 2
            from numpy.core.multiarray import scalar
        return [scalar, np.dtype] + [type(np.dtype(t)) for t in ("int64", "int32", "float64", "float32", "bool")]
    except Exception:  # pragma: no cover - numpy is a dependency
        return []


def save(path: str | Path, state: dict[str, Any]) -> None:
    import torch

    atomic_replace(path, lambda tmp: torch.save(state, tmp))


def load(path: str | Path) -> dict[str, Any] | None:
    import torch

    path = Path(path)
    if not path.exists():
        return None
    with torch.serialization.safe_globals(_safe_globals()):
        return torch.load(path, map_location="cpu", weights_only=True)
