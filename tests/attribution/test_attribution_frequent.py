"""A window whose token is too frequent to scan is found in an ASCII document from small pieces
(``frequent.best_frequent``) with the very answer of normalising the whole document: the same
occurrences of the window in the normal form, the same one chosen, the same extension and raw
offsets, and every query's answer (spans, counts, sources, lines) equal with and without it."""

from __future__ import annotations

import random

import pytest

from sc2lsp.attribution import AttributionIndex, Document, build_index
from sc2lsp.attribution import rawsearch
from sc2lsp.attribution import segment as segment_mod
from sc2lsp.attribution.frequent import best_frequent, occurrences
from sc2lsp.attribution.hashing import WINDOW
from sc2lsp.attribution.normalize import normalize, normalize_with_offsets
from sc2lsp.attribution.segment import Region, _best_in
from sc2lsp.attribution.tight import extension

_LINES = ["# " + "-" * 40, "self.assertEqual(value, other)", "x = y", "return x", "", "}", "/* " + "=" * 30 + " */",
          "if a:", "pass", "----", "a b  c\td"]
_BLANKS = [" ", "  ", "\t", " \t ", "\x1f", " \x1f"]
_BREAKS = ["\n", "\n", "\n", "\r\n", "\n\n", "\x0c\n", "\n \n", "\x1c", "\r", "\x0b"]


def _doc(rng: random.Random, n: int) -> str:
    """ASCII text of frequent lines, re-spaced and re-broken every way the normal form collapses."""
    out = [rng.choice(["", " ", "\n", " \n\t"])]
    for _ in range(n):
        line = rng.choice(_LINES)
        if rng.random() < 0.3:
            line += f" {rng.randrange(20)}"
        words = line.split(" ")
        if len(words) > 1 and rng.random() < 0.2:  # the same words with a line break between two
            cut = rng.randrange(1, len(words))
            words = [" ".join(words[:cut]) + rng.choice(_BREAKS) + words[cut]] + words[cut + 1 :]
        out.append(rng.choice(["", "", "    ", "\t", "  "]) + rng.choice(_BLANKS).join(words))
        out.append(rng.choice(["", "", " ", "\t"]) + rng.choice(_BREAKS))
    out.append(rng.choice(["", " ", "\n", "\n\n ", "# end", "x"]))
    return "".join(out)


def _reference(raw: str, norm: str, qp: int):
    """What normalising the whole document gives: the raw offset of the chosen occurrence and
    its extension, or None."""
    whole, offs = normalize_with_offsets(raw)
    i = _best_in(whole, norm, qp, 0)
    if i < 0:
        return None
    return int(offs[i]), extension(norm, qp, whole, i)


def _query(rng: random.Random, raw: str) -> str:
    """A copy of part of the document, re-spaced, sometimes edited (so extensions differ)."""
    text = normalize(raw)
    a = rng.randrange(0, max(1, len(text) - 200))
    q = list(text[a : a + rng.randrange(120, 700)])
    for _ in range(rng.choice([0, 0, 1, 3])):
        if q:
            q[rng.randrange(len(q))] = rng.choice("xyz#-\n ")
    return "".join(q).replace(" ", rng.choice([" ", "  ", "\t"]))


def test_occurrences_are_those_of_the_normal_form():
    rng = random.Random(1)
    checked = 0
    for _ in range(300):
        raw = _doc(rng, rng.randrange(5, 60))
        whole, offs = normalize_with_offsets(raw)
        seps = [j for j, c in enumerate(whole[: len(whole) - WINDOW + 1]) if c in " \n"]
        for _ in range(20):
            if len(whole) < WINDOW:
                break
            i = rng.randrange(len(whole) - WINDOW + 1)
            if seps and rng.random() < 0.5:  # a window that starts with a separator
                i = rng.choice(seps)
            window = whole[i : i + WINDOW]
            want, j = [], whole.find(window)
            while j >= 0:
                want.append(j)
                j = whole.find(window, j + 1)
            lead = 1 if window[0] in " \n" else 0
            got = [m.start() for m in occurrences(raw, window)]
            assert got == [int(offs[j + lead]) for j in want], (raw, window)
            checked += len(want)
    assert checked > 5000


def test_the_chosen_occurrence_and_extension_are_the_whole_documents():
    rng = random.Random(2)
    compared = fallback = 0
    for _ in range(300):
        raw = _doc(rng, rng.randrange(10, 80))
        norm = normalize(_query(rng, raw) if rng.random() < 0.8 else _query(rng, _doc(rng, 10)))
        for _ in range(8):
            if len(norm) < WINDOW:
                break
            qp = rng.randrange(len(norm) - WINDOW + 1)
            got = best_frequent(raw, norm, qp)
            want = _reference(raw, norm, qp)
            if got is False:
                fallback += 1
                continue
            if want is None:
                assert got is None
                continue
            w, (ra, rb, text, at_start, at_end) = got
            reg = Region(0, text, ra, raw[ra:rb], raw)
            assert (reg.raw_offset(w), extension(norm, qp, text, w)) == want, (raw, norm, qp)
            compared += 1
    assert compared > 1000 and fallback < compared / 50


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(3)
    docs = [Document(path=f"f{i}.py", text=_doc(rng, rng.randrange(40, 200)) + f"\nunique_{i} = {i}\n")
            for i in range(30)]
    build_index(docs, tmp_path / "idx")
    return docs, tmp_path / "idx"


def test_answers_equal_with_and_without_it(corpus, monkeypatch):
    docs, out = corpus
    rng = random.Random(4)
    queries = [_query(rng, rng.choice(docs).text) for _ in range(120)]
    monkeypatch.setattr(rawsearch, "MAX_SEEN", 3)  # most tokens count as too frequent to scan
    calls = []
    real = segment_mod.best_frequent
    monkeypatch.setattr(segment_mod, "best_frequent", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(segment_mod, "FREQUENT", 10**9)  # always from pieces
    got = [[s.to_dict() for s in AttributionIndex.open(out).check(q)] for q in queries]
    assert len(calls) > 300
    monkeypatch.setattr(segment_mod, "FREQUENT", 0)  # always the whole document
    want = [[s.to_dict() for s in AttributionIndex.open(out).check(q)] for q in queries]
    assert got == want and sum(map(len, want)) > 100
    calls.clear()
    monkeypatch.setattr(segment_mod, "FREQUENT", 1)  # the default: pieces once per document, then whole
    idx = AttributionIndex.open(out)
    assert [[s.to_dict() for s in idx.check(q)] for q in queries] == want
    assert 0 < len(calls) <= len(docs)
    assert sum(1 for doc in idx._cache.values() if doc is not None and doc.whole is not None) > 0
