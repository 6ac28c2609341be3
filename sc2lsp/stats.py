"""Acceptance statistics, kept on this machine and never sent anywhere: per model and per day, how
many suggestions were shown, accepted whole, accepted in part, how many characters were accepted,
and the latency of the shown suggestions (p50/p95), so a base model and a fine-tuned adapter can be
compared on the user's own typing (``sc2lsp stats``).

The language server appends one JSON line per event to ``$XDG_STATE_HOME/sc2lsp/stats.jsonl``
(``~/.local/state/sc2lsp/stats.jsonl``; ``$SC2LSP_STATS_FILE`` overrides, ``SC2LSP_STATS=0`` turns
it off): ``{"t", "day", "model", "event": "shown", "ms", "chars"}`` or ``{..., "event": "accepted",
"whole", "chars"}``. A write that fails is logged and forgotten: statistics never stop serving.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


def stats_file() -> Path | None:
    """Where statistics go, or None when they are turned off."""
    if os.environ.get("SC2LSP_STATS", "1").lower() in ("0", "false", "no", "off"):
        return None
    env = os.environ.get("SC2LSP_STATS_FILE")
    if env:
        return Path(env).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state).expanduser() / "sc2lsp" / "stats.jsonl"


class Recorder:
    """Appends events on a background writer thread, so the language server's event loop never waits
    for the disk (a slow or blocked file only delays the statistics). The file is opened per batch,
    so several servers can share it; events past ``MAX_PENDING`` waiting ones are dropped."""

    MAX_PENDING = 10_000

    def __init__(self, path: Path | None = None):
        self.path = path if path is not None else stats_file()
        self._pending: queue.Queue[dict] = queue.Queue(self.MAX_PENDING)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._failed = False
        self._made_dir = False

    def _write(self, event: dict) -> None:
        if self.path is None:
            return
        now = time.time()
        event = {"t": round(now, 3), "day": time.strftime("%Y-%m-%d", time.localtime(now)), **event}
        try:
            self._pending.put_nowait(event)
        except queue.Full:
            return
        self.start()

    def start(self) -> None:
        """Start the writer thread (once): the server does it at ``initialized``, so the first
        suggestion shown after a start does not wait for a thread to start (1.5-4.6 ms measured
        under load on the first shown suggestion of a restart)."""
        if self._thread is None and self.path is not None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="sc2lsp-stats", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._pending.get()]
            while True:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            self._append(batch)
            for _ in batch:
                self._pending.task_done()

    def _append(self, batch: list[dict]) -> None:
        assert self.path is not None
        try:
            if not self._made_dir:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._made_dir = True
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(json.dumps(e) + "\n" for e in batch))
        except OSError as e:
            if not self._failed:
                log.warning("acceptance statistics not written to %s: %s", self.path, e)
            self._failed = True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the events recorded so far are written (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._pending.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def shown(self, model: str, ms: float, chars: int) -> None:
        self._write({"model": model, "event": "shown", "ms": round(ms, 1), "chars": chars})

    def accepted(self, model: str, chars: int, whole: bool) -> None:
        self._write({"model": model, "event": "accepted", "whole": whole, "chars": chars})


@dataclass
class Row:
    model: str
    day: str
    shown: int = 0
    accepted_whole: int = 0
    accepted_partly: int = 0
    chars_accepted: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float | None:
        return (self.accepted_whole + self.accepted_partly) / self.shown if self.shown else None

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    def as_dict(self) -> dict:
        rate = self.acceptance_rate
        return {"model": self.model, "day": self.day, "shown": self.shown, "accepted_whole": self.accepted_whole,
                "accepted_partly": self.accepted_partly, "chars_accepted": self.chars_accepted,
                "acceptance_rate": None if rate is None else round(rate, 4),
                "latency_p50_ms": self.percentile(0.5), "latency_p95_ms": self.percentile(0.95)}


def aggregate(lines, *, by_day: bool = True) -> list[Row]:
    """Rows per (model, day), or per model when ``by_day`` is false ("all" days); bad lines are skipped."""
    rows: dict[tuple[str, str], Row] = {}
    for line in lines:
        try:
            e = json.loads(line)
            model, day, kind = str(e["model"]), str(e["day"]) if by_day else "all", e["event"]
        except (ValueError, KeyError, TypeError):
            continue
        r = rows.setdefault((model, day), Row(model, day))
        if kind == "shown":
            r.shown += 1
            if isinstance(e.get("ms"), (int, float)):
                r.latencies.append(float(e["ms"]))
        elif kind == "accepted":
            if e.get("whole"):
                r.accepted_whole += 1
            else:
                r.accepted_partly += 1
            r.chars_accepted += int(e.get("chars") or 0)
    return sorted(rows.values(), key=lambda r: (r.day, r.model))


def read(path: Path | None = None) -> list[str]:
    path = path if path is not None else stats_file()
    if path is None or not path.is_file():
        return []
    return path.read_text(encoding="utf-8", errors="replace").splitlines()
