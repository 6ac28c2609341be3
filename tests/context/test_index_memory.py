"""What the index keeps per file: non-ASCII texts as UTF-8, symbols in the compact form decoded
per name on a first lookup; and the content rules of a text without encoding it."""

from __future__ import annotations

import sys

from sc2lsp.context.index import FileEntry, RepoIndex, reject_reason, text_digest
from sc2lsp.context.symbols import extract
from sc2lsp.core.content import content_reason, text_reason
from sc2lsp.workspace.symbol_cache import Compact, cache_key, encode, unpack

SRC = "# café 漢字 😀\nclass Größe:\n    def wert(self):\n        return 'ü'\n\ndef wert():\n    pass\n" * 40


def test_a_non_ascii_text_is_kept_as_utf8_and_read_back_exactly():
    for text in (SRC, "x = '\udcff'\n" + SRC, "plain = 1\n"):
        e = FileEntry("a.py", "python", text)
        assert e.text == text and e.lines == text.split("\n")
        if not text.isascii():
            assert type(e._text) is bytes and sys.getsizeof(e._text) < sys.getsizeof(text) * 0.6
    idx = RepoIndex()
    assert idx.apply_change("a.py", SRC) and not idx.apply_change("a.py", SRC)  # same text: no change
    found = idx.definitions_named("wert")
    assert len(found) == 80 and {d.container for d in found} == {"Größe", None}


def test_a_lookup_by_name_decodes_only_the_names_it_asks_for():
    symbols = extract("a.py", SRC, "python")
    key = cache_key("a.py", "python", text_digest(SRC))
    names, loader = unpack(encode(key, symbols), key, "a.py")
    assert isinstance(loader, Compact)
    assert loader.named("wert") == [d for d in symbols.definitions if d.name == "wert"]
    assert loader.named("missing") == [] and loader() == symbols
    idx = RepoIndex()
    idx.apply_entry(FileEntry("a.py", "python", SRC, None, names=names, loader=loader))
    e = idx.get("a.py")
    assert idx.definitions_named("wert") == tuple(d for d in symbols.definitions if d.name == "wert")
    assert not e.parsed  # nothing else decoded, nothing kept
    assert e.defs_named("Größe") == [d for d in symbols.definitions if d.name == "Größe"] and e.parsed
    damaged = Compact(b"not zlib", key, "a.py")
    assert damaged.named("wert") is None and damaged() is None


def test_text_rules_equal_the_byte_rules():
    texts = ["", "x\n", "a = 1\r\nb = 2\r\n", "\x00binary", "// @generated\nint x;\n", "y" * 6000,
             ("z" * 400 + "\n") * 10, "k\u2028" * 700, SRC, "s = '\udcff'\n", "é" * 600_000]
    for t in texts:
        want = content_reason(t.encode("utf-8", errors="replace"))[0]
        assert text_reason(t) == want, t[:20]
        assert reject_reason(t) == want


def test_indexing_a_workspace_keeps_no_decoded_texts(tmp_path):
    """Indexing and the background parse read each UTF-8 kept text once without keeping its
    decoding (the cache of decoded texts is for the files requests read); a request's reading
    is kept."""
    from sc2lsp.context import index as index_module
    from sc2lsp.workspace.indexer import index_workspace, parse_pending

    for i in range(12):
        (tmp_path / f"m{i}.py").write_text(SRC.replace("Größe", f"Größe{i}"), encoding="utf-8")
    index_module._decoded.cache_clear()
    idx = RepoIndex()
    index_workspace(idx, tmp_path, lazy=True, workers=1)
    parse_pending(idx, workers=1)
    assert len(idx) == 12 and not any(idx.get(p).needs_parse for p in idx.paths())
    assert idx.definitions_named("Größe3") and idx.stats()["files"] == 12
    assert index_module._decoded.cache_info().currsize == 0
    assert "Größe5" in idx.get("m5.py").text
    assert index_module._decoded.cache_info().currsize == 1
