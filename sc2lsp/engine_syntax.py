"""The syntax checkers the engine's post-processing uses: one tree-sitter checker per recently
used document, and the parse of a request's text on a helper thread while the model generates.

``SyntaxCheckers`` is an object ``sc2lsp.engine.Engine`` owns (``engine.syntax``); it needs only
the settings (``syntax_check``), which the engine passes again on every ``configure``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from .config import Settings

MAX_CHECKERS = 8  #: documents whose checker (and last tree) is kept


class SyntaxCheckers:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._checkers: dict = {}  #: (uri, language) -> its syntax checker, least recently used first
        self._parse_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc2lsp-parse")
        # its thread now: the pool starts it on the first submit, which would be the first
        # request's (a thread start while the model thread holds the GIL: 2-5 ms under load)
        self._parse_pool.submit(lambda: None)

    def configure(self, settings: Settings) -> None:
        self.settings = settings

    def close(self) -> None:
        self._parse_pool.shutdown(wait=False, cancel_futures=True)

    def checker(self, uri: str, language: str):
        """The syntax checker post-processing uses for a document: one per recently used document
        (each keeps its own last tree, so a check after another document's parses incrementally),
        or None (off, or no grammar)."""
        if not self.settings.syntax_check or not language:
            return None
        from .context.syntax import SyntaxChecker, syntax_checker

        with self._lock:
            key = (uri, language)
            checker = self._checkers.get(key)
            if checker is None:
                shared = syntax_checker(language)
                if shared is None:
                    return None
                checker = self._checkers[key] = SyntaxChecker(shared.language)
                while len(self._checkers) > MAX_CHECKERS:
                    self._checkers.pop(next(iter(self._checkers)))
            else:
                self._checkers[key] = self._checkers.pop(key)  # most recently used last
            return checker

    def parse(self, uri: str, language: str, text: str) -> None:
        """Parse ``text`` with the document's checker, so that post-processing's checks of the
        same text with a suggestion inserted parse incrementally (a whole parse of a document's
        window: ~10 ms for sc2-tiny's ~1,000-token prompts, more than generating)."""
        checker = self.checker(uri, language)
        if checker is not None:
            checker(text)

    def preparse(self, uri: str, language: str, text: str) -> None:
        """``parse`` on a helper thread while the model works on the request (llama.cpp releases
        the GIL): a request whose text the checker has not seen does not parse it afterwards."""
        if self.settings.syntax_check and language:
            try:
                self._parse_pool.submit(self.parse, uri, language, text)
            except RuntimeError:  # closed
                pass
