"""Attribution for the language server: the indexes to use, opened once, and protocol-ready results.

The LSP layer (``sc2lsp/lsp/server.py``) stays thin: it turns a request into a text (given,
a range of a document, or the last accepted suggestion) and the workspace folders to exclude,
calls ``AttributionProvider.check`` and only adds document ranges to the spans. Everything
here is plain Python values, no protocol types.

Which indexes: the ``attributionIndex`` setting (a list of index directories) when it is set,
else the indexes ``models.toml`` links to the configured model (``attribution_index = [...]``).
Indexes are opened lazily and kept open (memory-mapped) until the list changes or an index
is rebuilt (its manifest changed); a missing or damaged index is a ``UserError`` every time it
is asked for, so fixing the file fixes the next request.
"""

from __future__ import annotations

import os

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import UserError
from .query import COMMON_THRESHOLD, MAX_QUERY_CHARS, AttributionIndex, Span
from .store import MANIFEST

NO_INDEX = ("no attribution index: set sc2lsp.attributionIndex or build one with `sc2lsp attribution build`")
#: Verification time per index and request: a 1 MB text still answers within seconds.
TIME_LIMIT_S = 2.0


@dataclass(frozen=True)
class Check:
    """What ``check`` answers: the indexes asked and the spans found (offsets into the text)."""

    indexes: tuple[str, ...]
    spans: tuple[dict, ...]


def linked_indexes(model: str | None) -> tuple[Path, ...]:
    """The attribution indexes ``models.toml`` links to ``model`` (a name or a .gguf path); () if none
    or the registry cannot say."""
    if not model:
        return ()
    try:
        from ..models.registry import indexes_for_model

        return indexes_for_model(model)
    except UserError:
        return ()


class AttributionProvider:
    """Opens the configured indexes and answers checks (thread-safe; checks run off the event loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[Path, tuple[float, AttributionIndex]] = {}

    def indexes(self, configured: Sequence[str], model: str | None) -> tuple[Path, ...]:
        """The setting's list if it is non-empty, else the model's linked indexes."""
        if configured:  # each index once, however it is spelled (a trailing slash, ~, a repeat)
            return tuple(dict.fromkeys(Path(os.path.normpath(Path(p).expanduser())) for p in configured))
        return linked_indexes(model)

    def _get(self, path: Path) -> AttributionIndex:
        try:
            stamp = (path / MANIFEST).stat().st_mtime_ns
        except OSError:
            stamp = None
        with self._lock:
            hit = self._open.get(path)
            if hit is not None and stamp is not None and hit[0] == stamp:
                return hit[1]
        index = AttributionIndex.open(path)  # UserError naming the problem and the fix
        with self._lock:
            self._open[path] = (stamp, index)
        return index

    def forget(self, keep: Iterable[Path] = ()) -> None:
        """Drop opened indexes not in ``keep`` (the setting changed)."""
        keep = set(keep)
        with self._lock:
            for p in [p for p in self._open if p not in keep]:
                del self._open[p]

    def check(self, text: str, paths: Sequence[Path], exclude: Iterable[str | Path] = (),
              linked_from: str | None = None) -> Check:
        """Spans of ``text`` found in the indexes ``paths``, outside the ``exclude`` directories.
        ``linked_from``: the model whose models.toml entry gave ``paths`` (for the error message).

        Raises ``UserError`` for no index, a broken index or a text over the size limit.
        """
        if not isinstance(text, str):
            raise UserError(f"the text to check must be a string, not {type(text).__name__}")
        if len(text) > MAX_QUERY_CHARS:
            raise UserError(f"the text to check has {len(text)} characters; the limit is {MAX_QUERY_CHARS}")
        if not paths:
            raise UserError(NO_INDEX)
        missing = [p for p in paths if not p.exists()]
        if missing and linked_from:
            raise UserError(f"{NO_INDEX} (models.toml links {linked_from} to {', '.join(map(str, missing))}, "
                            f"which is not built: for sc2-tiny run `make attribution-index`)")
        exclude = [str(p) for p in exclude]
        spans: list[dict] = []
        for path in paths:
            index = self._get(path)
            spans += [span_dict(s) for s in index.check(text, exclude=exclude, time_limit_s=TIME_LIMIT_S)]
        spans.sort(key=lambda s: (s["start"], -s["end"]))
        return Check(tuple(str(p) for p in paths), tuple(spans))


def span_dict(s: Span) -> dict:
    """A query ``Span`` in the protocol's shape (``range`` is filled in by the LSP layer)."""
    return {
        "start": s.start,
        "end": s.end,
        "range": None,
        "text": s.text,
        "count": s.documents,
        "common": s.kind == "common" or s.documents > COMMON_THRESHOLD,
        "licenseText": s.kind == "license_text",
        "sources": [{"repo": src.repository, "path": src.path, "license": src.license, "revision": src.revision,
                     "line": src.start_line} for src in s.sources],
    }
