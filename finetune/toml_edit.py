"""Safe edits of the user's ``models.toml``: replace one ``[models.NAME]`` entry, keep everything else.

* Exact names: header keys are parsed as TOML keys (``[models."sc2.custom"]`` is the entry
  ``sc2.custom``, never ``sc2``); an entry's sub-tables (``[models.NAME.quants.q8]``) go with it.
* Everything else stays byte for byte: other entries, comments (a comment block right above the
  next header belongs to that header), blank lines and line endings. The new entry takes the old
  one's place, or is appended.
* Written under an exclusive lock (``models.toml.lock``, ``fcntl.flock``) to a unique temporary
  file in the same folder, validated (``validate(tmp)``), fsynced, renamed over the file (its mode
  kept), and the folder fsynced: a crash or a concurrent export never leaves a half-written or
  mixed registry.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Callable, Iterator

from sc2lsp.fileio import atomic_write

_KEY = re.compile(r'\s*(?:(?P<bare>[A-Za-z0-9_-]+)|"(?P<basic>(?:[^"\\]|\\.)*)"|\'(?P<lit>[^\']*)\')\s*')
_HEADER = re.compile(r"^\s*\[\[?(?P<keys>[^\]#]*)\]\]?\s*(?:#.*)?$")


def header_keys(line: str) -> list[str] | None:
    """The dotted key path of a ``[table]`` / ``[[array]]`` header line, None for any other line."""
    m = _HEADER.match(line.rstrip("\r\n"))
    if m is None:
        return None
    s, pos, keys = m.group("keys"), 0, []
    while True:
        k = _KEY.match(s, pos)
        if k is None:
            return None
        if k.group("bare") is not None:
            keys.append(k.group("bare"))
        elif k.group("basic") is not None:
            keys.append(bytes(k.group("basic"), "utf-8").decode("unicode_escape") if "\\" in k.group("basic")
                        else k.group("basic"))
        else:
            keys.append(k.group("lit"))
        pos = k.end()
        if pos == len(s):
            return keys
        if s[pos] != ".":
            return None
        pos += 1


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def replace_entry(text: str, name: str, entry: str) -> str:
    """``text`` with the ``[models.NAME]`` entry (and its sub-tables) replaced by ``entry``."""
    lines = text.splitlines(keepends=True)
    headers = [(i, header_keys(ln)) for i, ln in enumerate(lines) if header_keys(ln) is not None]
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    drop: list[tuple[int, int]] = []
    for n, (i, keys) in enumerate(headers):
        if len(keys) >= 2 and keys[0] == "models" and keys[1] == name:
            j = headers[n + 1][0] if n + 1 < len(headers) else len(lines)
            if n + 1 < len(headers):
                while j > i + 1 and _is_comment(lines[j - 1]):  # the next header's comment block
                    j -= 1
            drop.append((i, j))
    block = entry.replace("\r\n", "\n").replace("\n", newline)
    if not block.endswith(newline):
        block += newline
    if not drop:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += newline
        sep = newline if lines and lines[-1].strip() else ""
        return "".join(lines) + sep + block
    out, last = [], 0
    for k, (i, j) in enumerate(drop):
        out.extend(lines[last:i])
        if k == 0:
            out.append(block)
            if j < len(lines) and lines[j].strip():
                out.append(newline)  # keep a blank line before what follows
        last = j
    out.extend(lines[last:])
    return "".join(out)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock for editing ``path`` (a ``.lock`` file next to it; other processes wait)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def upsert(path: Path, name: str, entry: str, validate: Callable[[Path], object] | None = None) -> None:
    """Replace or add the entry ``name`` in ``path`` safely (see the module doc)."""
    path = Path(path)
    with locked(path):
        text = path.read_bytes().decode("utf-8") if path.is_file() else ""
        new = replace_entry(text, name, entry)
        atomic_write(path, lambda f: f.write(new.encode("utf-8")), validate=validate, keep_mode=True)
