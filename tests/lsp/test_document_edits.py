"""Incremental line starts: after any sequence of ranged edits they equal a full rescan."""

from __future__ import annotations

import random

import pytest

from sc2lsp.lsp.documents import Document, _NEWLINE


def _full(text: str) -> list[int]:
    return [0] + [m.end() for m in _NEWLINE.finditer(text)]


@pytest.mark.parametrize("seed", range(6))
def test_ranged_edits_keep_line_starts_exact(seed):
    rng = random.Random(seed)
    pieces = ["a", "bc", "\n", "\r", "\r\n", "x\ny", "", "\n\n", "é", "😀"]
    doc = Document("file:///t.py", "".join(rng.choice(pieces) for _ in range(200)))
    doc.line_starts()
    for _ in range(400):
        n = len(doc.line_starts())
        start = (rng.randrange(n + 1), rng.randrange(6))
        end = (min(n, start[0] + rng.randrange(3)), rng.randrange(6))
        doc.apply_change("".join(rng.choice(pieces) for _ in range(rng.randrange(4))), start, end,
                         rng.choice(["utf-16", "utf-8", "utf-32"]))
        assert doc.line_starts() == _full(doc.text), doc.text


def test_whole_text_change_and_crlf_split():
    doc = Document("file:///t.py", "a\r\nb")
    doc.line_starts()
    doc.apply_change("", (0, 1), (1, 0))  # removes "\r\n"
    assert doc.text == "ab" and doc.line_starts() == [0]
    doc.apply_change("\r", (0, 1), (0, 1))
    doc.apply_change("\n", (1, 0), (1, 0))  # "\r" + "\n" typed separately become one line break
    assert doc.text == "a\r\nb" and doc.line_starts() == [0, 3]
    doc.apply_change("x\ny")
    assert doc.line_starts() == [0, 2]
