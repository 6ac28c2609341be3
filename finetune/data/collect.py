"""Collect source files from a directory tree (disk I/O lives here, not in the core)."""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .filters import reject_reason


@dataclass(frozen=True)
class Collected:
    path: str  # relative, with forward slashes
    text: str | None
    reason: str | None  # why it was dropped; None when kept


def stdlib_root() -> Path:
    """The Python standard library sources of this interpreter (PSF license)."""
    return Path(sysconfig.get_paths()["stdlib"])


# encodings/ (code-page tables) and pydoc_data/ (one huge string) are data, not code to learn from
STDLIB_EXCLUDE = ("site-packages", "test", "tests", "idle_test", "__pycache__", "lib2to3/tests", "encodings", "pydoc_data")


def iter_files(root: Path, suffixes: tuple[str, ...], exclude_dirs: tuple[str, ...] = ()) -> Iterator[Path]:
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        parts = rel.split("/")
        if any(d in parts[:-1] or rel.startswith(d + "/") for d in exclude_dirs):
            continue
        if p.is_symlink() or not p.is_file() or p.suffix not in suffixes:
            continue
        yield p


def collect(root: Path, suffixes: tuple[str, ...] = (".py",), exclude_dirs: tuple[str, ...] = ()) -> list[Collected]:
    out = []
    for p in iter_files(root, suffixes, exclude_dirs):
        rel = p.relative_to(root).as_posix()
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            out.append(Collected(rel, None, "not UTF-8"))
            continue
        reason = reject_reason(text)
        out.append(Collected(rel, None if reason else text, reason))
    return out


def is_heldout(path: str, fraction: float, salt: str = "sc2lsp") -> bool:
    """A stable split by file: the same path is always on the same side."""
    h = int.from_bytes(hashlib.sha256(f"{salt}:{path}".encode()).digest()[:8], "big")
    return h / 2**64 < fraction
