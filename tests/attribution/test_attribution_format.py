"""Index format 2: document-only postings found again in the text, identical files as aliases,
and old indexes refused with one clear error."""

from __future__ import annotations

import json
import random
import struct

import pytest

from sc2lsp.attribution import AttributionIndex, Document, add_to_index, build_index
from sc2lsp.attribution.build import DEFAULT_STRIDE
from sc2lsp.attribution.hashing import WINDOW
from sc2lsp.attribution.normalize import normalize

from sc2lsp.attribution.store import FORMAT_VERSION
from sc2lsp.errors import UserError

from test_attribution import code_like


def test_an_index_of_the_previous_format_is_one_clear_error(tmp_path):
    out = tmp_path / "idx"
    build_index([Document(path="a.py", text=code_like(random.Random(1), 30))], out)
    m = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**m, "version": FORMAT_VERSION - 1}))
    with pytest.raises(UserError, match=f"version {FORMAT_VERSION - 1}, this sc2lsp reads version "
                                        f"{FORMAT_VERSION}; rebuild"):
        AttributionIndex.open(out)
    (out / "manifest.json").write_text(json.dumps(m))
    seg = next(out.glob("seg-*.sc2a"))
    data = seg.read_bytes()
    seg.write_bytes(data[:8] + struct.pack("<I", FORMAT_VERSION - 1) + data[12:])
    with pytest.raises(UserError, match=f"version {FORMAT_VERSION - 1}.*rebuild"):
        AttributionIndex.open(out)


def test_identical_files_share_postings_and_survive_excluding_one(tmp_path):
    text = code_like(random.Random(2), 60)
    for name in ("corpus", "workspace"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "m.py").write_text(text)
    stats = build_index([tmp_path / "workspace", tmp_path / "corpus"], tmp_path / "idx")
    assert stats.documents == 2 and stats.windows == (len(normalize(text)) - WINDOW) // DEFAULT_STRIDE + 1  # postings once
    idx = AttributionIndex.open(tmp_path / "idx")
    snippet = text[500:1200]
    spans = idx.check(snippet)
    assert spans[0].documents == 2 and {s.root for s in spans[0].sources} == {str(tmp_path / n) for n in
                                                                              ("corpus", "workspace")}
    spans = idx.check(snippet, exclude=[tmp_path / "workspace"])  # the original is the excluded one
    assert spans[0].documents == 1 and spans[0].documents_exact
    assert spans[0].sources[0].root == str(tmp_path / "corpus") and spans[0].sources[0].verified
    assert spans[0].sources[0].start_line == text[:500].count("\n") + 1
    # and across segments: the copy added later is its own posting, verified once
    add_to_index(tmp_path / "idx", [Document(path="stored.py", text=text)])
    st: dict = {}
    spans = AttributionIndex.open(tmp_path / "idx").check(snippet, stats=st)
    assert spans[0].documents == 3 and st["verified"] == 1


def test_windows_are_found_again_in_large_and_non_nfc_documents(tmp_path):
    rng = random.Random(3)
    big = code_like(rng, 1500)
    assert len(normalize(big)) > 40_000
    decomposed = big.replace("a", "a\u0301", 40)  # not NFC: found by normalising the document
    build_index([Document(path="big.py", text=big), Document(path="nfd.py", text=decomposed)], tmp_path / "idx")
    idx = AttributionIndex.open(tmp_path / "idx")
    for start in (100, len(big) // 2, len(big) - 600):
        spans = idx.check("\u2603\n" + big[start : start + 400])
        src = next(s for s in spans[0].sources if s.path == "big.py")
        assert src.verified and src.start_line == big[:start].count("\n") + 1, start
    piece = decomposed[: decomposed.index("a\u0301", 1000) + 300][-500:]
    spans = idx.check(piece)
    assert any(s.end - s.start == len(piece.strip()) and [x.path for x in s.sources] == ["nfd.py"]
               and s.sources[0].verified for s in spans)
