"""The one mapping between documents (``file://`` URIs or paths) and workspace-relative paths.

A document belongs to a workspace root when its *resolved* path (symlinks followed) lies inside
the root's resolved path; its workspace-relative path is then the resolved path relative to the
resolved root. So a symlink inside the workspace that points elsewhere in it is the file it
points to (one index entry, one prompt path), a symlink that points outside the workspace is not
workspace code (never indexed, never excluded from attribution as the user's own), and a
workspace opened through a symlinked directory maps like the real one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")  # two characters at least: not a drive letter


def uri_to_path(uri: str) -> Path | None:
    """The local path of a ``file:`` URI (None for any other scheme)."""
    p = urlparse(uri)
    if p.scheme != "file" or p.netloc not in ("", "localhost"):  # file://host/... is not a local file
        return None
    return Path(unquote(p.path))


def as_path(path_or_uri: str | Path) -> Path | None:
    """A path from a path or a ``file:`` URI; None for a URI of another scheme (``untitled:``)."""
    if isinstance(path_or_uri, Path):
        return path_or_uri
    if _SCHEME.match(path_or_uri):
        return uri_to_path(path_or_uri)
    return Path(path_or_uri)


def resolve(path: str | Path) -> Path:
    """``path`` with symlinks followed (as far as they exist)."""
    return Path(os.path.realpath(path))


def relative_path(path_or_uri: str | Path, resolved_root: Path) -> str | None:
    """Workspace-relative ``/`` path of a document under ``resolved_root`` (already resolved), or
    None when its resolved path lies outside it."""
    path = as_path(path_or_uri)
    if path is None:
        return None
    target = resolve(path)
    if not target.is_relative_to(resolved_root):
        return None
    return target.relative_to(resolved_root).as_posix()
