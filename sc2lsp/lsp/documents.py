"""Open documents and LSP positions, with the protocol's own rules.

pygls's workspace splits lines with ``str.splitlines``, which also breaks at form feeds, vertical
tabs, ``\\x1c``-``\\x1e``, ``\\x85`` and ``\\u2028``: in a file holding one of those (the Python
standard library has form feeds) every position after it lands on the wrong line. LSP lines end
only at ``\\n``, ``\\r\\n`` or ``\\r``, so documents are kept here instead.

Positions count code units of the negotiated encoding (UTF-16 unless the client offers another);
a character past the end of its line means the end of the line (LSP 3.17), a line past the end of
the document is out of range (``None``) for a request and the end of the document for an edit.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from ..core.languages import language_id_for_path
from ..workspace.paths import uri_to_path

#: Documents larger than this (in characters) are kept in sync but never completed.
MAX_DOCUMENT_CHARS = 1_000_000

_NEWLINE = re.compile(r"\r\n|\r|\n")


def _units(ch: str, encoding: str) -> int:
    if encoding == "utf-16":
        return 2 if ord(ch) > 0xFFFF else 1
    if encoding == "utf-8":
        return len(ch.encode("utf-8", errors="surrogatepass"))
    return 1


@dataclass(eq=False)
class Document:
    uri: str
    text: str
    version: int | None = None
    language_id: str = ""
    #: why the file-access policy excludes this document (secret, ignored, ...): no completion,
    #: no context, no attribution (``sc2lsp.workspace.policy``)
    excluded: str | None = None
    _starts: list[int] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ lines

    def line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in _NEWLINE.finditer(self.text)]
        return self._starts

    def _line_bounds(self, line: int) -> tuple[int, int]:
        """(start, end) of ``line``'s content, without its line break."""
        starts = self.line_starts()
        start = starts[line]
        end = starts[line + 1] if line + 1 < len(starts) else len(self.text)
        while end > start and self.text[end - 1] in "\r\n":
            end -= 1
        return start, end

    # ------------------------------------------------------------------ positions

    def offset_at(self, line: int, character: int, encoding: str = "utf-16", *, clamp: bool = False) -> int | None:
        """Code-point offset of an LSP position, ``None`` if the line is outside the document.

        With ``clamp`` (edits), a line past the end is the end of the document and a negative
        line or character is 0.
        """
        starts = self.line_starts()
        if line < 0 or character < 0:
            if not clamp:
                return None
            line, character = max(line, 0), max(character, 0)
        if line >= len(starts):
            return len(self.text) if clamp else None
        start, end = self._line_bounds(line)
        if encoding == "utf-32" or self.text[start:end].isascii():
            return min(start + character, end)
        units = 0
        i = start
        while i < end and units < character:
            units += _units(self.text[i], encoding)
            i += 1
        return i

    def position_at(self, offset: int, encoding: str = "utf-16") -> tuple[int, int]:
        """The LSP (line, character) of a code-point offset."""
        offset = max(0, min(offset, len(self.text)))
        starts = self.line_starts()
        line = bisect.bisect_right(starts, offset) - 1
        start = starts[line]
        seg = self.text[start:offset]
        if encoding == "utf-32" or seg.isascii():
            return line, len(seg)
        return line, sum(_units(c, encoding) for c in seg)

    # ------------------------------------------------------------------ edits

    def apply_change(self, text: str, start: tuple[int, int] | None = None, end: tuple[int, int] | None = None,
                     encoding: str = "utf-16") -> int:
        """Apply one content change (whole text if no range); returns the offset after the new text."""
        if start is None or end is None:
            self.text = text
            self._starts = None
            return len(text)
        a = self.offset_at(*start, encoding, clamp=True)
        b = self.offset_at(*end, encoding, clamp=True)
        a, b = min(a, b), max(a, b)
        old = self.text
        self.text = old[:a] + text + old[b:]
        self._update_starts(a, b, len(text))
        return a + len(text)

    def _update_starts(self, a: int, b: int, inserted: int) -> None:
        """Line starts after ``old[a:b]`` became ``inserted`` characters: only the lines around the
        edit are scanned again, the rest shift (a keystroke in a 1 M-character document stays cheap)."""
        starts = self._starts
        if starts is None:
            return
        delta = inserted - (b - a)
        li = bisect.bisect_right(starts, max(a - 1, 0)) - 1  # the line holding the character before the edit
        hk = bisect.bisect_right(starts, b) + 1  # two line starts past the edit: a \r\n cut in two heals
        lo = starts[li]
        hi = starts[hk] + delta if hk < len(starts) else len(self.text)
        mid = [x for x in (m.end() for m in _NEWLINE.finditer(self.text, lo, hi)) if x < hi or hk >= len(starts)]
        self._starts = starts[: li + 1] + mid + [x + delta for x in starts[hk:]]

    @property
    def completable(self) -> str | None:
        """Why this document gets no completions, or None."""
        if self.excluded is not None:
            return f"excluded by the file-access policy ({self.excluded})"
        if len(self.text) > MAX_DOCUMENT_CHARS:
            return f"larger than {MAX_DOCUMENT_CHARS} characters"
        if "\x00" in self.text:
            return "binary (holds NUL characters)"
        return None


def read_document(uri: str, language_id: str = "") -> tuple[Document | None, str | None]:
    """A document that is not open, read from disk: (document, None) or (None, why not)."""
    path = uri_to_path(uri)
    if path is None:
        return None, f"unknown document {uri} (not open, not a file: URI)"
    try:
        if not path.is_file():
            return None, f"unknown document {uri} (not open, no such file)"
        if path.stat().st_size > 4 * MAX_DOCUMENT_CHARS:
            return None, f"{path} is too large"
        data = path.read_bytes()
    except OSError as e:
        return None, f"cannot read {path}: {e.strerror}"
    if b"\x00" in data[:8192]:
        return None, f"{path} looks binary"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"{path} is not valid UTF-8 (byte {e.start})"
    return Document(uri, text, None, language_id or language_id_for_path(path, text)), None


class Documents:
    """The open documents by URI."""

    def __init__(self) -> None:
        self._docs: dict[str, Document] = {}

    def open(self, uri: str, text: str, version: int | None, language_id: str) -> Document:
        doc = Document(uri, text, version, language_id)
        self._docs[uri] = doc
        return doc

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def __len__(self) -> int:
        return len(self._docs)

    def __iter__(self):
        """The open documents (a snapshot: safe while documents open and close)."""
        return iter(list(self._docs.values()))
