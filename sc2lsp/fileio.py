"""Atomic file replacement, the one way files that must never be half-written are written.

``atomic_replace(path, fill)`` has ``fill(tmp_path)`` write a unique temporary file next to
``path`` (``atomic_write(path, write)``: ``write(f)`` on it opened as a binary file), fsyncs it,
optionally validates it (``validate(tmp_path)``), renames it over ``path`` and fsyncs the folder. Any failure, including ``KeyboardInterrupt`` and the
``RuntimeError`` torch raises on a full disk, removes the temporary file and leaves the old
``path`` as it was. Used by attribution index segments and manifests, training checkpoints and
the models.toml editor. ``user_cache_dir(name, env)``: where sc2lsp keeps a cache of the user's.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_replace(path: str | Path, fill: Callable[[Path], object], *,
                   validate: Callable[[Path], object] | None = None, keep_mode: bool = False) -> None:
    """Replace ``path`` with the file ``fill(tmp_path)`` writes, all or nothing (see the module doc).

    ``keep_mode`` gives the new file the permission bits of the file it replaces."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fill(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if keep_mode and path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        if validate is not None:
            validate(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], **options) -> None:
    """``atomic_replace`` with ``write(f)`` on the temporary file opened for binary writing."""

    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    atomic_replace(path, fill, **options)


def user_cache_dir(name: str, env: str) -> Path:
    """``$env`` if set, else ``$XDG_CACHE_HOME/sc2lsp/name`` (``~/.cache/sc2lsp/name``)."""
    override = os.environ.get(env)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "sc2lsp" / name
