"""``rawsearch.scan_raw`` with its whitespace-free slices made by ``bytes.translate`` (ASCII) and
made once per occurrence (the holder test and the first comparison with the query share them)
gives exactly what the scan before it gave: every ``RawHit`` field, for random documents and
queries, every kind of ASCII whitespace included, with and without a document's kept token
positions. The scan before is kept here (main at 628e8c6, slices by ``str.split``/``join``).
Both the Python scan (``scan_raw_py``) and the compiled one (``_speedups.scan``, when built) are
compared with it."""

from __future__ import annotations

import random

import pytest

from sc2lsp.attribution import rawsearch
from sc2lsp.attribution.hashing import WINDOW
from sc2lsp.attribution.normalize import normalize
from sc2lsp.attribution.rawsearch import (FIRST, MAX_SCORED, MAX_SEEN, DocText, _common_len, _flat, _flat_after,
                                          _flat_before, _too_short, _unflat_back, _unflat_fwd, window_parts)
from sc2lsp.attribution.speedups import C

from test_attribution_query_path import VOCABS, _code, edited_query


def _ref_flat_before(text: str, p: int, m: int) -> str:
    size = 2 * m + 64
    while True:
        flat = "".join(text[max(0, p - size) : p].split())
        if len(flat) >= m or size >= p:
            return flat[-m:] if m else ""
        size *= 4


def _ref_flat_after(text: str, p: int, m: int) -> str:
    size = 2 * m + 64
    while True:
        flat = "".join(text[p : p + size].split())
        if len(flat) >= m or p + size >= len(text):
            return flat[:m]
        size *= 4


def _ref_agree_before(raw: str, p: int, q_before: str, known: int) -> int:
    m = min(known + FIRST, len(q_before))
    rb = _ref_flat_before(raw, p, m)
    if rb == q_before[len(q_before) - len(rb) :]:
        if len(rb) < m or m == len(q_before):
            return len(rb)
        rb = _ref_flat_before(raw, p, len(q_before))
        return _common_len(q_before, len(q_before), rb, len(rb), False)
    n = min(known, len(rb))
    while rb[-1 - n] == q_before[-1 - n]:
        n += 1
    return n


def _ref_agree_after(raw: str, e: int, q_after: str, known: int) -> int:
    m = min(known + FIRST, len(q_after))
    ra = _ref_flat_after(raw, e, m)
    if ra == q_after[: len(ra)]:
        if len(ra) < m or m == len(q_after):
            return len(ra)
        return _common_len(q_after, 0, _ref_flat_after(raw, e, len(q_after)), 0, True)
    n = min(known, len(ra))
    while ra[n] == q_after[n]:
        n += 1
    return n


def ref_scan(raw: str, norm: str, qp: int, min_chars: int = 0):
    """main's ``scan_raw`` (628e8c6) without kept positions: ``(result, p, sb, sa, held, resume)``."""
    window = norm[qp : qp + WINDOW]
    tok, k, q_before, q_after, win_b, win_a = window_parts(norm, qp)
    n, nb, na = len(tok), len(q_before), len(q_after)
    need_b, need_a = len(win_b), len(win_a)
    last_b, first_a = win_b[-1:], win_a[:1]
    w_before, w_after = window[:k], window[k + n :]
    best, best_p, seen, reach, held, resume = -1, None, 0, (0, 0), [], -1
    best_sb = best_sa = 0
    settled = min_chars <= WINDOW
    p = raw.find(tok)
    while p >= 0:
        seen += 1
        if seen > MAX_SEEN:
            return -1, None, 0, 0, held, p
        if len(held) >= MAX_SCORED:
            resume = p
            break
        e = p + n
        if need_b and (p == 0 or (raw[p - 1] != last_b and not raw[p - 1].isspace())):
            pass
        elif need_a and (e >= len(raw) or (raw[e] != first_a and not raw[e].isspace())):
            pass
        elif (((p >= k and raw.startswith(w_before, p - k)) or _ref_flat_before(raw, p, need_b) == win_b)
              and (raw.startswith(w_after, e) or _ref_flat_after(raw, e, need_a) == win_a)):
            held.append(p)
            sa = _ref_agree_after(raw, e, q_after, need_a)
            if not (settled and sa + nb <= best):
                sb = _ref_agree_before(raw, p, q_before, need_b)
                reach = (max(reach[0], sb), max(reach[1], sa))
                if sb + sa > best:
                    best, best_p, best_sb, best_sa = sb + sa, p, sb, sa
                    if sb == nb and sa == na:
                        resume = p + 1
                        break
                    settled = settled or (_unflat_fwd(norm, qp + k + n, sa) - _unflat_back(norm, qp + k, sb)
                                          >= min_chars)
        p = raw.find(tok, p + 1)
    return _too_short(norm, qp, k, tok, best_p, reach, len(held), min_chars), best_p, best_sb, best_sa, held, resume


#: Every ASCII character ``str.isspace`` takes for whitespace, and a few it does not.
_ASCII_WS = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
_NOT_WS = "\x00\x08\x0e\x1b\x7fa("


def test_flat_is_split_and_join():
    rng = random.Random(3)
    for alphabet in (_ASCII_WS + _NOT_WS, _ASCII_WS + "ab\u00a0\u0085\u3000\u2028é"):
        for _ in range(3000):
            piece = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
            assert _flat(piece) == "".join(piece.split()), repr(piece)
    text = "".join(rng.choice(_ASCII_WS + "xy(") for _ in range(3000))
    for _ in range(500):
        p, m = rng.randrange(len(text) + 1), rng.randrange(0, 300)
        assert _flat_before(text, p, m) == _ref_flat_before(text, p, m)
        assert _flat_after(text, p, m) == _ref_flat_after(text, p, m)


def _respaced(rng: random.Random, raw: str) -> str:
    """``raw`` with some whitespace runs replaced by other ASCII whitespace, and some removed or
    added between two characters (the whitespace-aside matches the scan looks for)."""
    out = []
    for c in raw:
        r = rng.random()
        if c.isspace() and r < 0.3:
            out.append("".join(rng.choice(_ASCII_WS) for _ in range(rng.randrange(0, 3))))
        elif not c.isspace() and r < 0.03:
            out.append(c + rng.choice(_ASCII_WS))
        else:
            out.append(c)
    return "".join(out)


#: The scans compared with the old one: Python's, and the compiled one when it is built.
SCANS = [pytest.param(rawsearch.scan_raw_py, id="python"),
         pytest.param(rawsearch._scan_compiled, id="compiled",
                      marks=pytest.mark.skipif(C is None, reason="sc2lsp.attribution._speedups is not built"))]


def _fields(h) -> tuple:
    return h.result, h.p, h.sb, h.sa, list(h.held), h.resume


@pytest.mark.parametrize("scan_raw", SCANS)
@pytest.mark.parametrize("vocab", sorted(VOCABS) + ["respaced"])
def test_scan_gives_the_old_scans_hit(vocab, scan_raw):
    rng = random.Random(sum(map(ord, vocab)))
    checked, kinds = 0, set()
    for trial in range(25):
        raw = _code(rng, rng.choice([20, 200, 1500]), VOCABS["words" if vocab == "respaced" else vocab])
        norm_doc = normalize(raw)
        if len(norm_doc) < 3 * WINDOW:
            continue
        if vocab == "respaced":
            raw = _respaced(rng, raw)
        doc = DocText(raw)
        for _ in range(3):  # queries sharing the document's kept positions
            norm = edited_query(rng, norm_doc)
            if norm is None:
                continue
            for qp in rng.sample(range(len(norm) - WINDOW + 1), min(12, len(norm) - WINDOW + 1)):
                for min_chars in (0, 50, 120):
                    want = ref_scan(raw, norm, qp, min_chars)
                    assert _fields(scan_raw(raw, norm, qp, min_chars)) == want, (vocab, trial, qp, min_chars)
                    assert _fields(scan_raw(raw, norm, qp, min_chars, doc.occ)) == want
                    r = want[0]
                    kinds.add("none" if r is None else "short" if isinstance(r, tuple) else "frequent" if r == -1
                              else "scored-all" if len(want[4]) >= MAX_SCORED else "found")
                    checked += 1
    assert checked > 1000
    assert {"none", "short", "found"} <= kinds, kinds
    assert vocab == "unicode" or "frequent" in kinds, kinds


@pytest.mark.parametrize("scan_raw", SCANS)
def test_scan_of_text_with_every_ascii_whitespace(scan_raw):
    # a block repeated with each separator replaced by runs of every ASCII whitespace kind: each
    # copy holds the window whitespace aside (and the scan must take \x1c-\x1f for whitespace)
    # (the query differs from every copy somewhere, so none agrees all the way and up to
    # MAX_SCORED copies are scored)
    rng = random.Random(11)
    block = "def f(x):\n    return g(x, y) + h[1]  # note\nclass K(Base):\n    pass\n"
    capped = 0
    for _ in range(30):
        raw = "".join(_respaced(rng, block) + rng.choice(["\n", "\x1c", "\x0c\r\n", "\x1f "]) for _ in range(20))
        norm = normalize(block.replace("note", "nope") + block + block.replace("Base", "Bass"))
        for qp in range(0, len(norm) - WINDOW + 1, 7):
            for min_chars in (0, 50):
                want = ref_scan(raw, norm, qp, min_chars)
                assert _fields(scan_raw(raw, norm, qp, min_chars)) == want
                capped += len(want[4]) == MAX_SCORED and want[5] >= 0
    assert capped > 50  # scans stopped at MAX_SCORED held occurrences, with where to resume


def test_the_shared_first_slices_are_the_ones_agreement_compares(monkeypatch):
    # the slices the holder test makes are handed to _agree_before/_after: they are exactly the
    # ones those would make themselves (the scan makes no other slice of the same size)
    calls = []
    real_b, real_a = rawsearch._agree_before, rawsearch._agree_after

    def agree_b(raw, p, q_before, known=0, rb=None):
        calls.append(rb is not None)
        assert rb is None or rb == _ref_flat_before(raw, p, min(known + FIRST, len(q_before)))
        return real_b(raw, p, q_before, known, rb)

    def agree_a(raw, e, q_after, known=0, ra=None):
        calls.append(ra is not None)
        assert ra is None or ra == _ref_flat_after(raw, e, min(known + FIRST, len(q_after)))
        return real_a(raw, e, q_after, known, ra)

    monkeypatch.setattr(rawsearch, "_agree_before", agree_b)
    monkeypatch.setattr(rawsearch, "_agree_after", agree_a)
    rng = random.Random(4)
    raw = _respaced(rng, _code(rng, 300, VOCABS["words"]))
    norm_doc = normalize(raw)
    for _ in range(20):
        norm = edited_query(rng, norm_doc)
        if norm is not None:
            for qp in range(0, len(norm) - WINDOW + 1, 11):
                rawsearch.scan_raw_py(raw, norm, qp, 50)
    assert calls and all(calls)
