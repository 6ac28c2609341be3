"""The file-access policy: which files the server may read, index, or put in a prompt. One place.

Invariants (ARCHITECTURE.md, "File access"):

* The server reads from disk only files inside a workspace folder that the scan rules allow
  (``rules.path_reason``: ignore files, secret-bearing names, vendored folders, generated and
  binary names). A URI outside every folder is never read, whatever a client asks.
* A file is judged by its *real* path: a symlink by its target's workspace-relative path (a
  harmless ``settings_local.py -> .env`` is the secret ``.env``).
* An editor buffer of an excluded file (secret, ignored, vendored) is never indexed, never
  context for another file, never completed and never attribution input: requests on it get an
  empty result. A buffer outside every workspace folder is completed from its own text only,
  unless its name is a secret one; so is a buffer that is no local file (VS Code's
  ``untitled:Untitled-1``, a notebook cell), which is never read from disk either.

``rules.is_secret_path`` is the one list of secret-bearing names, shared with ``finetune prepare``
(through ``scan``) and the remote backends (never send such a file).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote, urlsplit

from .paths import as_path, relative_path
from .rules import SECRET_DIRS, SECRET_IN_DIR, SECRET_NAMES, IgnoreRules, is_secret_path, path_reason  # noqa: F401

def uri_path(uri_or_path: str) -> str | None:
    """The local path of a ``file:`` URI (or a plain path); None for any other scheme (``untitled:``,
    ``vscode-notebook-cell:``, ``file://host/...``), which is never a file the server may read."""
    path = as_path(uri_or_path)
    return None if path is None else str(path)


@dataclass(frozen=True)
class Verdict:
    """Where a file belongs and whether the server may use it."""

    real: str | None  #: the real (symlink-resolved) absolute path, None for a non-file URI
    root: Path | None  #: the workspace folder holding the real path, None outside every folder
    rel: str | None  #: the real path relative to ``root`` (``/``-separated)
    reason: str | None  #: why the file is excluded (secret, ignored, ...); None when allowed

    @property
    def excluded(self) -> bool:
        """An editor buffer of this file gets no completion, no context, no attribution."""
        return self.reason is not None

    @property
    def readable(self) -> bool:
        """The server may read this file from disk."""
        return self.reason is None and self.root is not None


class FilePolicy:
    """The policy for a set of workspace folders (roots are real paths).

    ``judge(uri_or_path)`` is cheap after the first call per folder (ignore files are read once
    per folder and cached; ``forget_rules()`` when an ignore file changes).
    """

    def __init__(self, roots: Iterable[str | Path] = ()):
        self._lock = threading.Lock()
        self._rules: dict[Path, tuple[object, set[str]]] = {}
        self.roots: list[Path] = []
        self.set_roots(roots)

    def set_roots(self, roots: Iterable[str | Path]) -> None:
        """The workspace folders; a whole disk or the home directory is never one (not a project)."""
        never = {Path(os.path.realpath(Path.home()))}
        real = {Path(os.path.realpath(r)) for r in roots}
        real = {r for r in real if r != Path(r.anchor) and r not in never}
        with self._lock:
            self.roots = sorted(real, key=lambda r: -len(str(r)))  # innermost folder first
            self._rules = {r: v for r, v in self._rules.items() if r in real}

    def forget_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def judge(self, uri_or_path: str) -> Verdict:
        path = uri_path(uri_or_path)
        if path is None:  # an editor buffer with no file: its own text, unless its name is a secret one
            name = unquote(urlsplit(uri_or_path).path)
            return Verdict(None, None, None, "secret-bearing file" if name and is_secret_path(name) else None)
        real = os.path.realpath(path)
        for root in self.roots:
            rel = relative_path(real, root)  # the one mapping (paths.py): by the resolved target
            if rel is not None and rel != ".":
                return Verdict(real, root, rel, self.reason(root, rel))
        reason = "secret-bearing file" if is_secret_path(real) or is_secret_path(path) else None
        return Verdict(real, None, None, reason)

    def reason(self, root: Path, rel: str) -> str | None:
        """Why ``rel`` (inside ``root``) is excluded: its folders, ignore files, then its name."""
        rules = self._ignore_rules(root, rel)
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            why = path_reason("/".join(parts[:depth]), rules, is_dir=True)
            if why:
                return why
        return path_reason(rel, rules)

    def _ignore_rules(self, root: Path, rel: str):
        with self._lock:
            rules, seen = self._rules.get(root) or (IgnoreRules(), set())
            self._rules[root] = (rules, seen)
            parts = rel.split("/")[:-1]
            for depth in range(len(parts) + 1):
                d = "/".join(parts[:depth])
                if d in seen:
                    continue
                seen.add(d)
                for source in IgnoreRules.SOURCES:
                    try:
                        lines = (root / d / source).read_text(encoding="utf-8", errors="replace").splitlines()
                    except OSError:
                        continue
                    rules.add(d, lines, source)
            return rules
