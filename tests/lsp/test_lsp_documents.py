"""LSP positions and edits on documents: UTF-16/8/32 units, LSP line breaks only, clamping."""

from __future__ import annotations

import pytest

from sc2lsp.lsp.documents import Document, read_document

TEXT = "s = '😀漢字'\r\nt = 'a\x0cb'\rv\nlast"


@pytest.mark.parametrize(
    "line, char, enc, expected",
    [
        (0, 5, "utf-16", 5),  # before the emoji
        (0, 7, "utf-16", 6),  # after the emoji: 2 UTF-16 units, 1 code point
        (0, 8, "utf-16", 7),  # after 漢
        (0, 7, "utf-8", 5 + 1 - 1 + 1),  # inside the emoji's 4 bytes: after it (6)
        (0, 9, "utf-8", 6),  # after the emoji: 4 UTF-8 bytes
        (0, 12, "utf-8", 7),  # after 漢: 3 more bytes
        (0, 6, "utf-32", 6),
        (0, 999, "utf-16", 9),  # past the line end: the line end, before \r\n
        (1, 7, "utf-16", 18),  # a form feed is not a line break in LSP
        (2, 0, "utf-16", 21),  # a lone \r is one
        (3, 2, "utf-16", 25),
        (4, 0, "utf-16", None),  # past the last line
    ],
)
def test_offset_at(line, char, enc, expected):
    assert Document("u", TEXT).offset_at(line, char, enc) == expected


def test_position_at_round_trips():
    doc = Document("u", TEXT)
    for offset in range(len(TEXT) + 1):
        if TEXT[offset - 1: offset + 1] == "\r\n":
            continue  # between \r and \n is not a position
        line, char = doc.position_at(offset)
        assert doc.offset_at(line, char) == offset, (offset, line, char)


def test_incremental_edits_in_utf16():
    doc = Document("u", "s = '😀漢字'\nu = 1\n")
    assert doc.apply_change("Z", (0, 7), (0, 7)) == 7
    doc.apply_change("E", (0, 5), (0, 7))  # replace the emoji
    doc.apply_change("v = 2\n", (1, 0), (1, 0))
    assert doc.text == "s = 'EZ漢字'\nv = 2\nu = 1\n"
    doc.apply_change("!", (99, 0), (99, 0))  # past the end: appended
    doc.apply_change("whole", None, None)
    assert doc.text == "whole" and doc.line_starts() == [0]


def test_completable_and_reading_from_disk(tmp_path):
    assert Document("u", "x\x00y").completable.startswith("binary")
    assert Document("u", "x" * 1_000_001).completable.startswith("larger")
    assert Document("u", "ok").completable is None
    p = tmp_path / "a.py"
    p.write_bytes(b"caf\xe9\n")
    doc, why = read_document(p.as_uri())
    assert doc is None and "not valid UTF-8" in why
    p.write_text("x = 1\n")
    doc, why = read_document(p.as_uri())
    assert doc.text == "x = 1\n" and doc.language_id == "python"
    assert read_document("untitled:1")[0] is None
    assert "no such file" in read_document((tmp_path / "nope.py").as_uri())[1]
