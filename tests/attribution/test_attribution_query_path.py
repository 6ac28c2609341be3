"""The query path's fast parts give the same answers as the plain computations they replace:
finding a window again in the raw text (``rawsearch.best_raw`` vs the occurrence-by-occurrence
scan), raw offsets of a region (whitespace-free positions vs ``normalize_with_offsets``), and the
non-blank arithmetic of ``_unflat_back``/``_unflat_fwd``."""

from __future__ import annotations

import random

import pytest

from sc2lsp.attribution import rawsearch
from sc2lsp.attribution.hashing import WINDOW
from sc2lsp.attribution.normalize import normalize, normalize_with_offsets
from sc2lsp.attribution.rawsearch import (CONTEXT, MAX_SCORED, MAX_SEEN, _common_len, _flat_after, _flat_before,
                                          best_raw, window_parts)
from sc2lsp.attribution.segment import Region


def scan_raw(raw: str, norm: str, qp: int, min_chars: int = 0):
    """The scan ``best_raw`` replaced (format 2's first query path), occurrence by occurrence."""
    tok, k, q_before, q_after, win_b, win_a = window_parts(norm, qp)
    need_b, need_a = len(win_b), len(win_a)
    best, best_p, seen, scored, reach = -1, None, 0, 0, (0, 0)
    p = raw.find(tok)
    while p >= 0:
        seen += 1
        if seen > MAX_SEEN:
            return -1
        if scored >= MAX_SCORED:
            break
        e = p + len(tok)
        if (_flat_before(raw, p, need_b) == win_b and _flat_after(raw, e, need_a) == win_a
                and (len(q_before) + len(q_after) > best)):
            scored += 1
            rb = _flat_before(raw, p, len(q_before))
            sb = _common_len(q_before, len(q_before), rb, len(rb), False)
            sa = _common_len(q_after, 0, _flat_after(raw, e, len(q_after)), 0, True)
            reach = (max(reach[0], sb), max(reach[1], sa))
            if sb + sa > best:
                best, best_p = sb + sa, p
                if sb == len(q_before) and sa == len(q_after):
                    break
        p = raw.find(tok, p + 1)
    if best_p is not None and min_chars > WINDOW and scored < MAX_SCORED:
        a = _unflat_back_ref(norm, qp + k, reach[0])
        b = _unflat_fwd_ref(norm, qp + k + len(tok), reach[1])
        if b - a < min_chars:
            return None, b
    return best_p


def _unflat_back_ref(text: str, end: int, n: int) -> int:
    i = end
    while n > 0 and i > 0:
        i -= 1
        n -= not text[i].isspace()
    return i


def _unflat_fwd_ref(text: str, start: int, n: int) -> int:
    i = start
    while n > 0 and i < len(text):
        n -= not text[i].isspace()
        i += 1
    return i


def _code(rng: random.Random, n_lines: int, vocab: list[str]) -> str:
    """Code-like text over a small vocabulary (so tokens repeat, past MAX_SEEN in long texts),
    with indentation, tabs, blank lines, runs of spaces and words glued to punctuation."""
    lines = []
    for _ in range(n_lines):
        indent = rng.choice(["", "    ", "        ", "\t", "  \t "])
        words = [rng.choice(vocab) for _ in range(rng.randrange(1, 8))]
        seps = [rng.choice([" ", " ", " ", "  ", "", "\t"]) for _ in words]
        lines.append(indent + "".join(w + s for w, s in zip(words, seps)).rstrip())
        if rng.random() < 0.1:
            lines.append(rng.choice(["", "   ", "\t"]))
    return "\n".join(lines)


def edited_query(rng: random.Random, norm_doc: str) -> str | None:
    """A query: a copy of part of the document with edits, so agreement ends at various points
    (normalised; None when it is shorter than a window)."""
    a = rng.randrange(0, len(norm_doc) - 2 * WINDOW)
    q = norm_doc[a : a + rng.randrange(2 * WINDOW, 3 * CONTEXT)]
    for _ in range(rng.randrange(0, 4)):
        i = rng.randrange(len(q))
        q = q[:i] + rng.choice(["Z", "", " ", "yy"]) + q[i + 1 :]
    norm = normalize(q)
    return norm if len(norm) >= WINDOW else None


VOCABS = {
    "words": ["self", "x", "=", "(", ")", "return", "assertEqual(", "def", "foo_bar", ":", "if", "None", ","],
    "overlapping": ["====", "aaa", "abab", "a", "ab", "==", "-->", "--"],  # tokens that overlap themselves
    "unicode": ["é", "naïve", "中文", "x", "=", "\u3000", "ß", "(", ")"],
}


@pytest.mark.parametrize("vocab", sorted(VOCABS))
def test_best_raw_answers_like_the_scan(vocab):
    rng = random.Random(hash(vocab) % 1000)
    checked = kinds = 0
    seen_kinds = set()
    for trial in range(60):
        raw = _code(rng, rng.choice([20, 200, 1500]), VOCABS[vocab])
        norm_doc = normalize(raw)
        if len(norm_doc) < 3 * WINDOW:
            continue
        norm = edited_query(rng, norm_doc)
        if norm is None:
            continue
        for qp in rng.sample(range(len(norm) - WINDOW + 1), min(25, len(norm) - WINDOW + 1)):
            for min_chars in (0, 50, 120):
                want = scan_raw(raw, norm, qp, min_chars)
                assert best_raw(raw, norm, qp, min_chars) == want, (vocab, trial, qp, min_chars)
                seen_kinds.add("none" if want is None else "short" if isinstance(want, tuple)
                               else "frequent" if want == -1 else "found")
                checked += 1
    assert checked > 1000
    # every kind of answer was compared, the frequent-token one included (except where tokens are long)
    assert {"none", "found", "short"} <= seen_kinds, seen_kinds
    assert vocab == "unicode" or "frequent" in seen_kinds


def test_unflat_matches_the_character_loops():
    rng = random.Random(5)
    for _ in range(400):
        t = "".join(rng.choice("ab \n\u3000é") for _ in range(rng.randrange(0, 80)))
        for _ in range(10):
            p, n = rng.randrange(0, len(t) + 1), rng.randrange(0, 90)
            assert rawsearch._unflat_back(t, p, n) == _unflat_back_ref(t, p, n)
            assert rawsearch._unflat_fwd(t, p, n) == _unflat_fwd_ref(t, p, n)


def test_region_raw_offsets_of_exact_pieces_match_normalize_with_offsets():
    # ASCII and NFC pieces take the whitespace-free positions; every character, blanks included
    rng = random.Random(8)
    for parts in (["x", "ab", " ", "\n", "  \n ", "\t", "\r\n", "\x0b", "."],
                  ["é", "中", "x", " ", "\n", "\u3000", "\u2028", "  \n\t"]):
        for _ in range(30):
            piece = "".join(rng.choice(parts) for _ in range(rng.randrange(1, 400)))
            norm, offs = normalize_with_offsets(piece)
            reg = Region(3, norm, 11, piece, piece)
            for k in range(len(norm)):
                assert reg.raw_offset(k) == int(offs[k]) + 11, (piece, k)


def test_a_shared_header_is_verified_in_max_sources_plus_one_documents(tmp_path):
    # 40 files start with the same 111-character line: the same stride phase in all of them, so
    # each has an indexed window ending on the newline after it, where the match (trimmed of
    # that blank) ends. Those hits count as verified too: after max_sources + 1 documents the
    # rest are counted from the postings instead of being read (16 were read before).
    from sc2lsp.attribution import AttributionIndex, Document, build_index

    from test_attribution import code_like

    rng = random.Random(12)
    shared = ("# Copyright 2024 The Shared Authors. All rights reserved. Licensed under the Example "
              "License; see the LICENSE file.")[:111]
    assert len(normalize(shared)) == 111 == 3 * 37
    build_index([Document(path=f"d{i:02d}.py", text=shared + "\n" + code_like(rng, 10)) for i in range(40)],
                tmp_path / "idx")
    st: dict = {}
    spans = AttributionIndex.open(tmp_path / "idx").check(code_like(rng, 3) + shared + "\n" + code_like(rng, 3),
                                                          stats=st)
    assert st["verified"] == 6 and st["chains"] == 16
    whole = [s for s in spans if s.length == 111]
    assert len(whole) == 1 and whole[0].kind == "common" and whole[0].documents == 40
    assert [x.path for x in whole[0].sources] == ["d00.py", "d01.py", "d02.py", "d03.py", "d04.py"]
