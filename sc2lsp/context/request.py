"""What a context provider works on and hands back: the ``Request`` (the file, the cursor, the
window already in the prompt, the options, the token counter, the deadline), the ``Candidate``
snippets it ranks, the ``ContextBlock`` that ``gather.py`` renders from them, and the options.
The providers themselves are in ``definitions.py`` and ``file_providers.py`` (see ``providers.py``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..core.prompt import SourceFile
from .index import FileEntry, RepoIndex
from .render import Snippet

PROVIDERS = ("definitions", "outline", "edits", "similar")
#: Each provider's time on a request. The server gathers on a request only when the whole prompt is
#: evaluated anyway (the first request in a document, a cursor that moved: hundreds of milliseconds
#: of prompt even for a 6M-parameter model); a keystroke reuses the committed context.
REQUEST_BUDGET_MS = 150.0


@dataclass(frozen=True)
class ContextOptions:
    priority: tuple[str, ...] = PROVIDERS
    """Providers in the order they are served from the budget (leave one out to disable it)."""
    render_order: tuple[str, ...] = ("outline", "definitions", "edits", "similar")
    """Order of the blocks in the prompt (stable, file-level context first)."""
    shares: dict[str, float] = field(default_factory=lambda: {
        "definitions": 0.85, "outline": 0.25, "edits": 0.15, "similar": 0.25})
    """The most of the budget each provider may take."""
    time_budget_ms: dict[str, float] = field(default_factory=lambda: {p: REQUEST_BUDGET_MS for p in PROVIDERS})
    """A provider not done by then is skipped (it finishes in the background; the next warm-up,
    which has no time budget, brings its blocks)."""
    max_definition_tokens: int = 160
    """A definition longer than this is shown elided (signature, doc, ``...``) or as an outline."""
    lines_above: int = 40
    lines_below: int = 12
    max_names: int = 64
    max_ambiguity: int = 3
    """A name with more definitions than this in the repository is only resolved through imports."""
    per_name: int = 2
    chunk_lines: int = 12
    chunk_stride: int = 6
    query_lines: int = 12
    min_similarity: float = 0.2
    max_chunks: int = 3
    max_edits: int = 4
    edit_margin: int = 2
    max_edit_lines: int = 24


@dataclass(frozen=True)
class ContextBlock:
    path: str
    code: str
    provider: str
    reason: str
    tokens: int
    lines: tuple[tuple[int, int], ...]  #: 0-based inclusive line ranges of ``path`` shown

    def source_file(self) -> SourceFile:
        return SourceFile(self.path, self.code)


@dataclass(frozen=True)
class Candidate:
    path: str
    snippets: tuple[Snippet, ...]
    reason: str
    compact: tuple[Snippet, ...] | None = None  #: a shorter rendering used when the full one does not fit
    brief: tuple[Snippet, ...] | None = None  #: the shortest (signatures only), what every candidate gets first

    def tiers(self) -> list[tuple[Snippet, ...]]:
        """Its renderings, shortest first (each one line range for line range the same); made
        once (the ranking and the allocation ask for them ~10 times; do not change the list)."""
        made = self.__dict__.get("_tiers")
        if made is None:
            out = [t for t in (self.brief, self.compact) if t is not None and t != self.snippets]
            made = self.__dict__["_tiers"] = list(dict.fromkeys(out)) + [self.snippets]
        return made


class Late(Exception):
    """Raised by ``Request.check`` when the provider's time is up."""


@dataclass
class Request:
    index: RepoIndex
    path: str
    text: str
    offset: int
    entry: FileEntry
    family: str
    cursor_line: int
    window: tuple[int, int]  #: lines of the current file already in the prompt (inclusive)
    options: ContextOptions
    count: Callable[[str], int]
    budget: int = 0  #: tokens of the whole context; providers stop ranking well past it (0: no limit)
    deadline: float = 0.0
    cancelled: threading.Event = field(default_factory=threading.Event)
    memo: dict = field(default_factory=dict)  #: what the providers of one request share (``definitions._prepared``)
    snapshot: Callable[[], list["Candidate"]] | None = None
    """Set by a provider that ranks most wanted first: the candidates ranked so far. A provider
    that is late then still gives those (``gather.assemble``) instead of nothing."""

    def enough(self, spent: int) -> bool:
        """True once candidates worth ``spent`` tokens (short forms) exceed what could be used."""
        return 0 < self.budget * 2 < spent

    def check(self) -> None:
        if self.cancelled.is_set() or time.perf_counter() > self.deadline:
            raise Late()

    def in_window(self, path: str, start: int, end: int) -> bool:
        return path == self.path and start <= self.window[1] and end >= self.window[0]
