"""Server-initiated ``$/progress`` for long commands (``sc2lsp.pullModel``, ``sc2lsp.tune``)."""

from __future__ import annotations

import asyncio
import logging
import time

from lsprotocol import types
from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)


class WorkDoneProgress:
    """Server-initiated work done progress (``window/workDoneProgress/create``, then ``$/progress``
    begin/report/end); nothing is sent to a client that does not support it."""

    def __init__(self, server: LanguageServer, token: str):
        self.server, self.token, self.on = server, token, False
        self.loop = asyncio.get_running_loop()
        self._last = (-1, 0.0)

    async def begin(self, title: str, cancellable: bool = False) -> None:
        caps = self.server.client_capabilities
        window = caps.window if caps is not None else None
        if not (window is not None and window.work_done_progress):
            return
        try:
            await self.server.work_done_progress.create_async(self.token)
        except Exception as e:  # the client refused: go on without progress
            log.info("no progress: %s", e)
            return
        self.on = True
        self.server.work_done_progress.begin(
            self.token, types.WorkDoneProgressBegin(title=title, cancellable=cancellable, percentage=0))

    def report(self, message: str, percentage: int | None = None) -> None:
        if self.on:
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=percentage))

    def threadsafe_report(self, done: int, total: int | None) -> None:
        """The download's callback (on the pull thread): at most one report per percent or 0.2 s."""
        pct = min(100, int(done * 100 / total)) if total else None
        now = time.monotonic()
        if pct is not None and pct == self._last[0] and now - self._last[1] < 1.0:
            return
        if pct is None and now - self._last[1] < 0.2:
            return
        self._last = (pct if pct is not None else -1, now)
        msg = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        self.loop.call_soon_threadsafe(self.report, msg, pct)

    def end(self, message: str) -> None:
        if self.on:
            self.server.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
            self.on = False
