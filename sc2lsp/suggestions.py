"""What goes into the engine and what comes out, without LSP types: a ``Cursor`` (document text
and a code-point offset), a ``Ticket`` (a pending suggestion that can be cancelled) whose future
resolves to a ``Suggestion``, and the ``ContextFn`` through which repository context comes in
(``workspace.workspaces.Workspaces.context`` in the server)."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .backends.worker import resolve

if TYPE_CHECKING:
    from .core.prompt import SourceFile

#: ``context_fn(cursor, plan, count, complete=False) -> files``: repository context for a request
#: whose prompt keeps ``plan``'s cut of the document; ``count`` is the model's token counter.
#: ``complete=True`` comes from a warm-up on a background thread: take the time needed (wait for the
#: index, no per-provider time budget). ``None``: no context yet (the workspace is being indexed).
ContextFn = Callable[..., "Sequence[SourceFile] | None"]


@dataclass(frozen=True)
class Cursor:
    """A completion position: the whole document text and a code-point offset into it."""

    uri: str
    text: str
    offset: int
    language: str = ""
    path: str | None = None  #: the file's path as shown to the model (relative to the workspace)
    repo: str | None = None  #: repository (workspace folder) name


@dataclass
class Suggestion:
    text: str
    """What to show ("" for nothing)."""
    source: str
    """``model`` (a generation for this request), ``typed_along`` (rest of the shown suggestion),
    ``attached`` (a generation started for an earlier keystroke), ``shared``, or ``none``."""
    reason: str
    """Stop reason of the generation, or why there is nothing (``cancelled``, ``no_model``...)."""
    raw: str = ""
    timings: dict[str, Any] = field(default_factory=dict)


class Ticket:
    """A pending suggestion. ``cancel()`` stops the model work unless another request shares it."""

    def __init__(self, future: Future, on_cancel: Callable[[], None] | None = None):
        self.future = future
        self._on_cancel = on_cancel

    def cancel(self) -> None:
        if self._on_cancel is not None:
            self._on_cancel()
            self._on_cancel = None
        resolve(self.future, Suggestion("", "none", "cancelled"))

    @staticmethod
    def done(s: Suggestion) -> "Ticket":
        f: Future = Future()
        f.set_result(s)
        return Ticket(f)


def latency_summary(timings: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/max of the total latency per source over the recent requests."""
    out: dict[str, Any] = {}
    for source in sorted({t.get("source", "?") for t in timings}):
        xs = sorted(t["total_ms"] for t in timings if t.get("source", "?") == source and "total_ms" in t)
        if xs:
            out[source] = {"n": len(xs), "p50_ms": xs[len(xs) // 2], "max_ms": xs[-1]}
    return out
