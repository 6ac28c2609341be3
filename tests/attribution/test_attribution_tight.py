"""The query path's shortcuts give main's answers: a hit verified in a small region around its
occurrence (``tight``) instead of checkpoint intervals, the token occurrences a document keeps
between queries (``DocText.occ``), and the normal form of a document normalised whole kept
with it (``DocText.whole``)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sc2lsp.attribution import AttributionIndex, build_index
from sc2lsp.attribution import segment as segment_mod
from sc2lsp.attribution import tight as tight_mod
from sc2lsp.attribution.hashing import WINDOW
from sc2lsp.attribution.normalize import normalize
from sc2lsp.attribution.rawsearch import DocText, best_raw, scan_raw
from sc2lsp.attribution.segment import Segment

from test_attribution_query_path import VOCABS, _code, edited_query
from test_attribution_query_path import scan_raw as scan_ref


@pytest.mark.parametrize("vocab", sorted(VOCABS))
def test_kept_occurrences_give_the_same_scan(vocab):
    """A document's kept occurrences (complete, or cut where an earlier scan stopped) give the
    answers of a fresh scan and of the reference scan, for many windows of many queries."""
    rng = random.Random(hash(vocab) % 997)
    checked = extended = 0
    for trial in range(30):
        raw = _code(rng, rng.choice([30, 300, 1500]), VOCABS[vocab])
        norm_doc = normalize(raw)
        if len(norm_doc) < 3 * WINDOW:
            continue
        doc = DocText(raw)
        for _ in range(4):  # queries sharing the document (and so its kept occurrences)
            norm = edited_query(rng, norm_doc)
            if norm is None:
                continue
            for qp in rng.sample(range(len(norm) - WINDOW + 1), min(20, len(norm) - WINDOW + 1)):
                for min_chars in (0, 50):
                    before = dict(doc.occ)
                    got = scan_raw(raw, norm, qp, min_chars, doc.occ)
                    fresh = scan_raw(raw, norm, qp, min_chars)
                    assert (got.result, got.p, got.sb, got.sa, got.held, got.resume) == (
                        fresh.result, fresh.p, fresh.sb, fresh.sa, fresh.held, fresh.resume)
                    assert got.result == best_raw(raw, norm, qp, min_chars) == scan_ref(raw, norm, qp, min_chars)
                    extended += any(len(doc.occ[t][0]) > len(before[t][0]) for t in before if t in doc.occ)
                    checked += 1
        for tok, (pos, done) in doc.occ.items():  # what is kept is where the token is
            want = [i for i in range(len(raw)) if raw.startswith(tok, i)]
            assert list(pos) == (want if done else want[: len(pos)])
    assert checked > 1500 and extended > 0  # a cut list was extended by a later scan


def _variant(rng: random.Random, text: str) -> str:
    """``text`` re-indented, re-spaced or with other line ends: the same normal form."""
    lines = text.split("\n")
    style = rng.choice(["tabs", "crlf", "spaces", "ff"])
    if style == "tabs":
        lines = [ln.replace("    ", "\t") for ln in lines]
    elif style == "spaces":
        lines = ["  " + ln.replace(" ", "   ") for ln in lines]
    elif style == "ff":
        lines = [ln + (" \x0c" if i % 7 == 3 else "") for i, ln in enumerate(lines)]
    return ("\r\n" if style == "crlf" else "\n").join(lines)


def _edit(rng: random.Random, text: str, n: int) -> str:
    for _ in range(n):
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice(["Q", "", " ", "\n", "zz", "  "]) + text[i + 1 :]
    return text


def _corpus(rng: random.Random, src) -> list[str]:
    """Documents sharing text in many ways: whitespace variants, edited copies, blocks repeated
    inside a document (a window held twice), documents that start or end with the shared text
    (and with whitespace), periodic lines, one not ASCII (NFC) and one not NFC."""
    vocab = VOCABS["words"] + ["alpha", "beta_gamma", "delta(", "'eps'", "# x", "zeta.eta"]
    base = _code(rng, 400, vocab)
    block = _code(rng, 12, vocab)
    docs = {
        "orig.py": base,
        "ws.py": _variant(rng, base),
        "edited.py": _edit(rng, base, 40),
        "twice.py": block + "\n" + _code(rng, 5, vocab) + "\n" + block + "\n" + base[: len(base) // 3],
        "head.py": "\n\n   \t" + base[len(base) // 2 :],
        "tail.py": base[: len(base) // 2] + "\n   \n",
        "dashes.py": ("# " + "-" * 70 + "\n" + _code(rng, 3, vocab)) * 40,
        "nfc.py": "# café 中文\n" + base[: len(base) // 2],
        "nfd.py": "# cafe\u0301\n" + base[len(base) // 3 :],
    }
    for i in range(8):
        a = rng.randrange(len(base) // 2)
        docs[f"part{i}.py"] = _code(rng, 3, vocab) + _variant(rng, _edit(rng, base[a : a + 3000], 5))
    for name, text in docs.items():
        (src / name).write_bytes(text.encode())
    return [base, block, docs["dashes.py"]]


def _queries(rng: random.Random, texts: list[str]) -> list[str]:
    out = []
    for _ in range(70):
        t = rng.choice(texts)
        a = rng.randrange(len(t) - 60)
        q = t[a : a + rng.choice([60, 90, 200, 600, 1200])]
        out.append(_edit(rng, q, rng.randrange(0, 6)))
    out += [texts[0][:500], texts[0][-500:], "x = 1\n" + texts[1] + "\ny = 2"]
    return out


def _answers(path, queries, tight: bool, monkeypatch, tally: Counter | None = None) -> list:
    monkeypatch.setattr(segment_mod, "TIGHT", tight)
    if tally is not None:
        real = Segment._tight

        def counting(self, *args):
            got = real(self, *args)
            tally["fallback" if got is False else "none" if got is None else "tight"] += 1
            return got

        monkeypatch.setattr(Segment, "_tight", counting)
    idx = AttributionIndex.open(path)
    out = [[s.to_dict() for s in idx.check(q, min_chars=m)] for q in queries for m in (40, 50, 80)]
    again = [[s.to_dict() for s in idx.check(q, min_chars=m)] for q in queries[:20] for m in (40, 50, 80)]
    assert again == out[:60]  # the same index again: kept occurrences and normal forms
    return out


@pytest.mark.parametrize("margin", [16, -1])
def test_tight_regions_give_the_checkpoint_regions_answers(tmp_path, monkeypatch, margin):
    """(A margin of -1 leaves out the character where the extension stops: then the extension
    reaches the region's edge, and the checkpoint region must be taken instead.)"""
    monkeypatch.setattr(tight_mod, "MARGIN", margin)
    rng = random.Random(15)
    src = tmp_path / "src"
    src.mkdir()
    texts = _corpus(rng, src)
    build_index([src], tmp_path / "idx")
    queries = _queries(rng, texts)
    tally: Counter = Counter()
    want = _answers(tmp_path / "idx", queries, False, monkeypatch)
    got = _answers(tmp_path / "idx", queries, True, monkeypatch, tally)
    for q, a, b in zip([q for q in queries for _ in range(3)], want, got):
        assert a == b, q  # spans, counts, sources and their line numbers
    assert sum(len(a) for a in want) > 100  # many spans, with sources from many documents
    # both ways were taken: a small region, and the checkpoint region where another occurrence
    # holds the window nearby (twice.py, dashes.py)
    assert tally["tight"] > (100 if margin > 0 else 20) and tally["fallback"] > (5 if margin > 0 else 100), tally


def test_estimate_counts_each_distinct_window_once():
    """``report.estimates`` from ``_previous`` (one sort per query) equals the per-span ``np.unique``."""
    import numpy as np

    from sc2lsp.attribution.query import _previous
    from sc2lsp.attribution.report import estimates

    rng = np.random.default_rng(5)
    for trial in range(200):
        n = int(rng.integers(1, 400))
        qh = rng.integers(0, int(rng.integers(1, 60)), size=n).astype(np.uint64)  # many repeats
        counts = rng.integers(0, 30, size=n)
        prev = _previous(qh)
        for _ in range(20):
            qa = int(rng.integers(0, n))
            qb = int(rng.integers(qa, n + 1)) + WINDOW - 1
            n_win = max(1, qb - qa - WINDOW + 1)
            _, first = np.unique(qh[qa : qa + n_win], return_index=True)
            want = round(int(counts[qa + first].sum()) / max(1.0, len(first) / 37))
            assert estimates(prev, counts, [(qa, qb)], 37) == [want]
