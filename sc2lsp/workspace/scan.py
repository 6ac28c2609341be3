"""Which files of a workspace may enter a prompt or a training set, and a walker that applies it.

Shared by the server (repository context) and ``finetune prepare`` (training data), so a file
the server would never show the model is never trained on either.

Rules, in order (the first that applies gives the reason):

* ``.gitignore`` files (at any depth, git semantics, deeper files win) and ``.sc2lspignore``
  (same syntax, checked after them, so it can also re-include with ``!``);
* secret-bearing files (``rules.is_secret_path``): ``.env*``, ``.envrc``, ``secret*``, ``*.pem``,
  ``*.key``, SSH keys, credentials files, ``*.tfstate*``, ``.s3cfg``, ``.vault-token``, and
  everything under ``.kube/``, ``.ssh/``, ``secrets/``, plus ``.docker/config.json``;
* vendored and tool directories (``node_modules``, ``vendor``, ``third_party``, ``.git``,
  virtualenvs, caches) and generated files by name (lockfiles, ``*_pb2.py``, ``*.min.js``);
* files over ``max_bytes`` (1 MB);
* by content: binary (a NUL byte or not UTF-8), minified (very long lines), generated (a
  "do not edit"/"auto-generated" marker near the top).

``classify`` is pure (path + bytes in, reason out); ``scan`` walks a directory, never follows a
symlink to a directory, and never reads a file whose real path lies outside the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..core.content import MAX_BYTES, MINIFIED_MAX_LINE, MINIFIED_MEAN_LINE, content_reason  # noqa: F401
from .rules import (  # noqa: F401  (the path rules, re-exported: scan is where callers look for them)
    BINARY_EXTENSIONS,
    GENERATED_PATTERNS,
    SECRET_NAMES as SECRET_PATTERNS,
    SOURCE_EXTENSIONS,
    SOURCE_NAMES,
    VENDORED_DIRS,
    IgnoreRules,
    is_secret_path,
    is_source_path,
    is_vendored_dir,
    path_reason,
)

def classify(rel_path: str, data: bytes, ignore: IgnoreRules | None = None, *,
             max_bytes: int = MAX_BYTES) -> tuple[str | None, str | None]:
    """Pure decision for one file: ``(reason, None)`` to skip it, ``(None, text)`` to use it."""
    reason = path_reason(rel_path, ignore)
    if reason:
        return reason, None
    return content_reason(data, max_bytes=max_bytes)


@dataclass(frozen=True)
class ScanEntry:
    path: str  #: relative to the root, ``/``-separated
    reason: str | None  #: why it was skipped; None when kept
    text: str | None = field(default=None, repr=False)  #: the contents when kept (and read)
    size: int = 0

    @property
    def kept(self) -> bool:
        return self.reason is None


def _read_ignore(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _listing(root: Path, rel_dir: str, rules: IgnoreRules) -> "list[os.DirEntry] | ScanEntry":
    """The sorted entries of ``rel_dir`` (its ignore files added to ``rules`` first), or an error entry."""
    d = root / rel_dir if rel_dir else root
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError as e:
        return ScanEntry(rel_dir or ".", f"unreadable directory: {e.strerror}")
    names = {e.name: e for e in entries if e.name in IgnoreRules.SOURCES}
    for source in IgnoreRules.SOURCES:
        e = names.get(source)
        try:
            present = e is not None and e.is_file()  # a symlink to a file counts
        except OSError:
            present = False
        if present:
            rules.add(rel_dir, _read_ignore(d / source), source)
    return entries


def scan(root: str | Path, *, max_bytes: int = MAX_BYTES, read: bool = True,
         report_dirs: bool = False) -> Iterator[ScanEntry]:
    """Walk ``root`` in sorted order, yielding every file with its verdict.

    Skipped directories are not entered (yielded once with their reason when ``report_dirs``).
    Symlinks: a link to a directory is never followed; a link to a file is read only when its
    real path is inside the root. Unreadable files (permissions, deleted meanwhile) are skipped
    with a reason, never raised.
    """
    root = Path(root)
    real_root = root.resolve()
    rules = IgnoreRules()
    policy = None

    # An explicit stack of (folder, its remaining entries), not recursion: a tree 1,000+ folders
    # deep is walked like any other (depth-first, sorted, as before).
    first = _listing(root, "", rules)
    if isinstance(first, ScanEntry):
        yield first
        return
    stack = [("", iter(first))]
    while stack:
        rel_dir, it = stack[-1]
        e = next(it, None)
        if e is None:
            stack.pop()
            continue
        rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
        try:
            is_link = e.is_symlink()
            is_dir = e.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_dir:
            reason = path_reason(rel, rules, is_dir=True)
            if reason is None:
                sub = _listing(root, rel, rules)
                if isinstance(sub, ScanEntry):
                    yield sub
                else:
                    stack.append((rel, iter(sub)))
            elif report_dirs:
                yield ScanEntry(rel + "/", reason)
            continue
        if is_link:
            target = Path(os.path.realpath(e.path))
            if target.is_dir():
                if report_dirs:
                    yield ScanEntry(rel + "/", "symlinked directory (not followed)")
                continue
            if real_root != target and real_root not in target.parents:
                yield ScanEntry(rel, "symlink pointing outside the workspace")
                continue
        elif not e.is_file(follow_symlinks=False):
            continue  # sockets, fifos, devices
        reason = path_reason(rel, rules)
        if reason is None and is_link:  # a link is judged by its target too (``ok.py -> .env``)
            if policy is None:
                from .policy import FilePolicy

                policy = FilePolicy([real_root])
            why = policy.reason(real_root, target.relative_to(real_root).as_posix())
            reason = f"symlink to an excluded file ({why})" if why else None
        yield ScanEntry(rel, reason) if reason else _read_entry(e.path, rel, max_bytes, read)


def _read_entry(path: str | Path, rel: str, max_bytes: int, read: bool) -> ScanEntry:
    """The entry of a file its path allows: by size, then (``read``) by content; unreadable is a reason."""
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            return ScanEntry(rel, f"larger than {max_bytes} bytes", size=size)
        if not read:
            return ScanEntry(rel, None, size=size)
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        return ScanEntry(rel, f"unreadable: {err.strerror or err}")
    reason, text = content_reason(data, max_bytes=max_bytes)
    return ScanEntry(rel, reason, text, size=len(data))
