"""Cheaper postings grouping and line numbers, same answers: ``_hits``' path for a query that
excludes nothing gives what the general path gives, and a document's shared line counts
(``lines.Newlines``) give the line numbers counted from the document's start."""

from __future__ import annotations

import random

import numpy as np

from sc2lsp.attribution import AttributionIndex, build_index
from sc2lsp.attribution.hashing import window_hashes
from sc2lsp.attribution.lines import MAX_ANCHORS, Newlines
from sc2lsp.attribution.normalize import normalize
from sc2lsp.attribution.rawsearch import DocText

from test_attribution import code_like


def test_newlines_count_like_str_count():
    rng = random.Random(1)
    for _ in range(40):
        raw = "".join(rng.choice(["a", "bc ", "\n", "\n\n", "\r\n", " "]) for _ in range(rng.randrange(0, 3000)))
        nl = Newlines(raw)
        for _ in range(rng.choice([5, 50, MAX_ANCHORS + 100])):
            p = rng.randrange(-5, len(raw) + 6)
            assert nl.before(p) == raw.count("\n", 0, max(0, p)), (len(raw), p)
        assert len(nl.anchors) <= MAX_ANCHORS
        assert nl.anchors == sorted(nl.anchors) and all(raw.count("\n", 0, a) == c for a, c in nl.anchors)


def _corpus(tmp_path):
    """Files sharing a 120-character header (more than the postings cap of 16 hold it), identical
    copies (aliases), and files that share blocks of lines with each other."""
    rng = random.Random(2)
    header = "# Copyright the authors of this very long header line, all rights reserved. " \
             "Licensed under the same terms.\n"
    blocks = [code_like(rng, 12) for _ in range(6)]
    src = tmp_path / "src"
    src.mkdir()
    texts = []
    for i in range(24):
        body = [code_like(rng, 10)] + rng.sample(blocks, 2) + [code_like(rng, 8)]
        texts.append(header + "".join(body))
        (src / f"m{i}.py").write_text(texts[-1])
    for i in range(3):
        (src / f"copy{i}.py").write_text(texts[i])
    build_index([src], tmp_path / "idx")
    return texts


def test_hits_without_exclusions_match_the_general_path(tmp_path):
    texts = _corpus(tmp_path)
    idx = AttributionIndex.open(tmp_path / "idx")
    rng = random.Random(3)
    capped_seen = 0
    for t in texts:
        for _ in range(3):
            a = rng.randrange(0, len(t) - 300)
            qh = window_hashes(normalize(t[a : a + 900] if rng.random() < 0.7 else t[:700]), 1)
            st1, st2 = {"bloom_pass": 0, "postings": 0}, {"bloom_pass": 0, "postings": 0}
            rows, groups, counts, capped = idx._hits(qh, (), st1)
            rows2, groups2, counts2, capped2 = idx._hits(qh, (str(tmp_path / "nowhere"),), st2)
            assert st1 == st2 and groups == {} and rows.dtype == rows2.dtype
            assert np.array_equal(rows, rows2) and np.array_equal(counts, counts2) and np.array_equal(capped, capped2)
            capped_seen += int(capped.any())
    assert capped_seen > 0


def test_line_numbers_from_shared_counts_match_counting_from_the_start(tmp_path, monkeypatch):
    texts = _corpus(tmp_path)
    rng = random.Random(4)
    queries = []
    for t in texts:
        a = rng.randrange(0, len(t) - 400)
        queries.append(t[a : a + 1000])
    warm = AttributionIndex.open(tmp_path / "idx")
    got = [[s.to_dict() for s in warm.check(q)] for q in queries]
    again = [[s.to_dict() for s in warm.check(q)] for q in reversed(queries)][::-1]  # anchors kept, other order
    monkeypatch.setattr(DocText, "newlines", lambda self: None)  # count from the document's start
    ref = [[s.to_dict() for s in AttributionIndex.open(tmp_path / "idx").check(q)] for q in queries]
    assert got == ref and again == ref
    lines = [(s["start_line"], s["end_line"]) for ans in ref for sp in ans for s in sp["sources"]]
    assert len(lines) > 50 and all(a is not None and a > 1 for a, _ in lines[:10])


def test_raw_offsets_asked_again_in_any_order_stay_right():
    from sc2lsp.attribution.normalize import normalize_with_offsets
    from sc2lsp.attribution.segment import Region

    rng = random.Random(5)
    for _ in range(60):
        piece = "".join(rng.choice(["ab", " ", "\n", "  x", "\u00e9", "e\u0301", "\t"]) for _ in range(rng.randrange(5, 400)))
        norm, offs = normalize_with_offsets(piece)
        if not norm:
            continue
        reg = Region(0, norm, 3, piece, "pad" + piece)
        ks = [rng.randrange(len(norm)) for _ in range(40)]
        for k in ks + ks[::-1]:
            assert reg.raw_offset(k) == int(offs[k]) + 3, (piece, k)
