"""What the query path does per document stays bounded without changing answers: a file is hashed
(checked against its indexed blob) only when it gives a match, each checkpoint piece of a
document is normalised once per query for all its hits, and the chunked common-prefix search
agrees with a character loop."""

from __future__ import annotations

import random

from sc2lsp.attribution import AttributionIndex, build_index
from sc2lsp.attribution import segment as segment_mod
from sc2lsp.attribution.rawsearch import _common_len
from sc2lsp.attribution.segment import Segment

from test_attribution import code_like

SHARED = "result = compute_the_total(alpha, beta)"  # 39 characters: one window, no 50-character span


def _common_len_ref(a: str, i: int, b: str, j: int, forward: bool) -> int:
    n = 0
    if forward:
        while i + n < len(a) and j + n < len(b) and a[i + n] == b[j + n]:
            n += 1
    else:
        while i - n > 0 and j - n > 0 and a[i - n - 1] == b[j - n - 1]:
            n += 1
    return n


def test_common_len_matches_the_character_loop():
    rng = random.Random(3)
    for _ in range(5000):
        a = "".join(rng.choice("ab \n") for _ in range(rng.randrange(0, 300)))
        b = list(a[rng.randrange(len(a) + 1):] if rng.random() < 0.3 else a)
        for _ in range(rng.randrange(0, 3)):
            if b:
                b[rng.randrange(len(b))] = "z"
        b = "".join(b)
        i, j = rng.randrange(len(a) + 1), rng.randrange(len(b) + 1)
        if rng.random() < 0.5:
            j = min(i, len(b))
        for forward in (True, False):
            assert _common_len(a, i, b, j, forward) == _common_len_ref(a, i, b, j, forward), (a, i, b, j, forward)


def _hash_calls(monkeypatch) -> list:
    calls: list = []
    real = Segment.unchanged

    def counting(self, d, text):
        calls.append(d)
        return real(self, d, text)

    monkeypatch.setattr(Segment, "unchanged", counting)
    return calls


def test_a_file_is_hashed_only_when_it_gives_a_match(tmp_path, monkeypatch):
    rng = random.Random(8)
    src = tmp_path / "src"
    src.mkdir()
    (src / "short.py").write_text(SHARED + "\n" + code_like(rng, 30))  # its first window is SHARED's
    copied = code_like(rng, 30)
    (src / "copied.py").write_text(code_like(rng, 5) + copied)
    build_index([src], tmp_path / "idx")
    calls = _hash_calls(monkeypatch)
    idx = AttributionIndex.open(tmp_path / "idx")
    st: dict = {}
    assert idx.check(code_like(rng, 3) + SHARED + "\n" + code_like(rng, 3), stats=st) == []
    assert st["chains"] == 1 and st["verified"] == 0  # read and searched, but nothing to report: not hashed
    assert calls == []
    spans = idx.check(copied[200:900])
    assert spans and spans[0].sources[0].verified and spans[0].sources[0].path == "copied.py"
    assert len(calls) == 1
    idx.check(copied[300:1000])  # the document is cached with its check
    assert len(calls) == 1


def test_a_changed_file_still_gives_no_verified_match(tmp_path):
    rng = random.Random(9)
    src = tmp_path / "src"
    src.mkdir()
    text = code_like(rng, 60)
    f = src / "m.py"
    f.write_text(text)
    build_index([src], tmp_path / "idx")
    snippet = text[500:1300]
    assert AttributionIndex.open(tmp_path / "idx").check(snippet)[0].sources[0].verified
    f.write_text(text + "# one more line\n")  # the snippet still reads the same in the file
    spans = AttributionIndex.open(tmp_path / "idx").check(snippet)
    assert spans and not any(s.verified for sp in spans for s in sp.sources)
    f.write_bytes(b"\xff\xfe" + text.encode())  # not UTF-8 any more: changed, not an error
    spans = AttributionIndex.open(tmp_path / "idx").check(snippet)
    assert spans and not any(s.verified for sp in spans for s in sp.sources)


def _edited_copies(rng: random.Random, base: str, n: int) -> list[str]:
    """Copies of ``base`` with a few lines replaced: several separate matches per document."""
    lines = base.splitlines()
    out = []
    for _ in range(n):
        ls = list(lines)
        for k in rng.sample(range(len(ls)), 6):
            ls[k] = code_like(rng, 1).rstrip()
        out.append("\n".join(ls) + "\n")
    return out


def test_one_normalisation_per_piece_and_the_same_answers(tmp_path, monkeypatch):
    rng = random.Random(10)
    base = code_like(rng, 120)
    src = tmp_path / "src"
    src.mkdir()
    for i, t in enumerate(_edited_copies(rng, base, 4)):
        (src / f"c{i}.py").write_text(code_like(rng, 3) + t)
    (src / "u.py").write_text("# caf\u00e9 \u2014 na\u0308ive\n" + base)  # not NFC: normalised whole
    build_index([src], tmp_path / "idx")
    queries = [base[a : a + 1200] for a in range(0, len(base) - 1200, 97)][:8]
    counted: list = []
    real_normalize = segment_mod.normalize

    def counting(piece):
        counted.append(len(piece))
        return real_normalize(piece)

    monkeypatch.setattr(segment_mod, "normalize", counting)
    monkeypatch.setattr(segment_mod, "TIGHT", False)  # checkpoint pieces only (tight regions: test_attribution_tight.py)
    cached = [[s.to_dict() for s in AttributionIndex.open(tmp_path / "idx").check(q)] for q in queries]
    n_cached = len(counted)
    real_region = Segment.region
    monkeypatch.setattr(Segment, "region", lambda self, d, doc, lo, hi, cache=None: real_region(self, d, doc, lo, hi))
    counted.clear()
    fresh = [[s.to_dict() for s in AttributionIndex.open(tmp_path / "idx").check(q)] for q in queries]
    assert cached == fresh
    assert any(len(x) > 1 for x in cached)  # several spans: several matches per document
    assert n_cached < 0.8 * len(counted)  # (48 vs 80 pieces here)


def test_raw_offsets_in_a_long_non_nfc_document_equal_normalize_with_offsets(tmp_path):
    # a document that is not NFC is one region; a source's raw offsets in it are normalised from
    # the last checkpoint before them that no NFC piece straddles, not from the document's start
    from sc2lsp.attribution import Document
    from sc2lsp.attribution.normalize import normalize_with_offsets
    from sc2lsp.attribution.rawsearch import DocText

    rng = random.Random(11)
    parts = ["a", "e\u0301", "\u00e9", "  ", "\n", "\t", "x = 1", "\u3000", "na\u0308ive", "\u212b", "\u037e",
             "def f(): pass", "\r\n", "\u0308", "b", "e\u0308\u3000"]
    texts = ["".join(rng.choice(parts) for _ in range(rng.randrange(2000, 6000))) for _ in range(5)]
    build_index([Document(path=f"t{i}.txt", text=t) for i, t in enumerate(texts)], tmp_path / "idx")
    seg = AttributionIndex.open(tmp_path / "idx").segments[0]
    from_checkpoints = 0
    for d in range(seg.n_docs):
        raw = seg.raw_text(d)
        doc = DocText(raw)
        assert not doc.exact
        offs = normalize_with_offsets(raw)[1]
        reg = seg.region(d, doc, 0, int(seg.nchars[d]))
        for k in sorted(rng.sample(range(len(reg.text)), 600)):
            assert reg.raw_offset(k) == int(offs[reg.base + k]), (d, k)
        from_checkpoints += len(reg._local)
    assert from_checkpoints > 10
