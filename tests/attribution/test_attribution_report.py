"""The spans of a query assembled once per query (``report.py``: covering matches in one numpy
pass, per-document license fields, capped windows by bisection, the estimates of all spans in one
pass, the whole query's license test first) give the answers of the per-span code they replace
(kept below as the reference)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sc2lsp.attribution import AttributionIndex, add_to_index, build_index
from sc2lsp.attribution import report
from sc2lsp.attribution.hashing import WINDOW
from sc2lsp.attribution.licenses import LICENSE_PHRASES, looks_like_license_text
from sc2lsp.attribution.normalize import raw_span
from sc2lsp.attribution.query import _previous
from sc2lsp.attribution.spans import Source, Span

from test_attribution import APACHE_HEADER, MIT, code_like


def reference_spans(self, text, norm, offs, qh, matches, counts, capped, truncated, min_chars, max_sources,
                    common_threshold):
    """``AttributionIndex._spans`` before ``report.py`` (628e8c6), with its ``_estimate``."""
    matches = [m for m in matches if m[1] - m[0] >= min_chars]
    if not matches:
        return []
    m_lo = np.fromiter((m[0] for m in matches), dtype=np.int64, count=len(matches))
    m_hi = np.fromiter((m[1] for m in matches), dtype=np.int64, count=len(matches))
    kept, out, prev = [], [], None
    for (qa, qb) in sorted({(m[0], m[1]) for m in matches}, key=lambda r: (r[0] - r[1], r[0])):
        firsts = {}
        for i in np.flatnonzero((m_lo <= qa) & (m_hi >= qb)).tolist():
            m = matches[i]
            firsts.setdefault((m[2], m[3]), m)
        outer = [c for a, b, c in kept if a <= qa and qb <= b]
        if outer and len(firsts) <= max(outer):
            continue
        kept.append((qa, qb, len(firsts)))
        exact = not truncated and qb - qa >= WINDOW + self.stride - 1 and not capped[qa : qb - WINDOW + 1].any()
        n_docs = len(firsts)
        if not exact:
            prev = _previous(qh) if prev is None else prev
            n_docs = max(n_docs, reference_estimate(prev, counts, qa, qb, self.stride))
        firsts = dict(sorted(firsts.items(), key=lambda kv: (not kv[1][6], kv[0])))
        metas = [self.segments[si].meta(d) for si, d in firsts]
        srcs = [self._source(m, qa, qb) for m in list(firsts.values())[:max_sources]]
        lic_text = any(mt.get("license_file") for mt in metas) or looks_like_license_text(norm[qa:qb])
        kind = "license_text" if lic_text else ("common" if n_docs > common_threshold else "copy")
        start, end = raw_span(offs, qa, qb)
        out.append(Span(start, end, qb - qa, text[start:end], kind, n_docs, exact,
                        sorted({mt.get("license") for mt in metas}, key=lambda x: (x is None, x or "")), srcs))
    out.sort(key=lambda s: (s.start, -s.end))
    return out


def reference_estimate(prev, counts, qa, qb, stride):
    n_win = max(1, qb - qa - WINDOW + 1)
    first = qa + np.flatnonzero(prev[qa : qa + n_win] < qa)
    return round(int(counts[first].sum()) / max(1.0, len(first) / stride))


def reference_source(self, m, qa, qb):
    mqa, mqb, si, d, da, db, verified, reg = m
    meta = self.segments[si].meta(d)
    start_line = end_line = None
    if verified:
        b = reg.raw_offset(db - (mqb - qb) - 1) + 1
        a = reg.raw_offset(da + (qa - mqa))
        start_line = reg.raw.count("\n", 0, a) + 1
        end_line = start_line + reg.raw.count("\n", a, max(a, b - 1))
    return Source(meta.get("repo"), meta["path"], meta.get("root_path"), meta.get("rev"), meta["blob"],
                  meta.get("license"), meta.get("license_source"), bool(meta.get("license_file")),
                  start_line, end_line, verified)


def _corpus(tmp_path) -> list[str]:
    """Files sharing a header (in more than the postings cap of 16: capped windows), identical
    copies, blocks of lines shared by several files, a license file, license headers, files
    changed after indexing (unverified matches), and a second segment."""
    rng = random.Random(11)
    header = "# Shared header line of this small corpus, long enough to be capped in the postings.\n"
    blocks = [code_like(rng, 10) for _ in range(8)]
    src = tmp_path / "src"
    (src / "lic").mkdir(parents=True)
    (src / "lic" / "LICENSE").write_text(MIT)
    texts = [MIT]
    for i in range(22):
        body = [code_like(rng, 8)] + rng.sample(blocks, 3) + [code_like(rng, 6)]
        if i % 5 == 0:
            body.insert(1, APACHE_HEADER)
        texts.append(header + "".join(body))
        (src / ("lic" if i % 4 == 0 else ".") / f"m{i}.py").write_text(texts[-1])
    for i in range(4):
        (src / f"copy{i}.py").write_text(texts[1 + i])
    build_index([src], tmp_path / "idx")
    more = tmp_path / "more"  # a second segment: its documents' numbers are the first one's again
    more.mkdir()
    for i in range(6):
        texts.append(code_like(rng, 5) + rng.choice(blocks) + code_like(rng, 5) + (APACHE_HEADER if i % 2 else ""))
        (more / f"n{i}.py").write_text(texts[-1])
    add_to_index(tmp_path / "idx", [more])
    for i in (1, 9):  # changed since indexing (m1.py has a copy, m9.py none)
        (src / f"m{i}.py").write_text(texts[1 + i].replace("def ", "def  x", 3))
    return texts


def _queries(rng: random.Random, texts: list[str]) -> list[str]:
    out = []
    for t in texts:
        a = rng.randrange(0, max(1, len(t) - 500))
        out.append(t[a : a + rng.choice([300, 1000, 1600])])
        pieces = [rng.choice(texts) for _ in range(4)]  # many spans, from several documents each
        out.append("".join(p[(k := rng.randrange(0, max(1, len(p) - 300))) : k + rng.randrange(60, 300)]
                           + "\nzz = 1\n" for p in pieces))
    return out


PARAMS = [dict(), dict(min_chars=38, max_sources=0), dict(min_chars=38, max_sources=1, common_threshold=3),
          dict(min_chars=80, max_sources=2, common_threshold=2), dict(min_chars=20, max_sources=12),
          dict(time_limit_s=0.0)]


def test_spans_equal_the_per_span_reference(tmp_path, monkeypatch):
    texts = _corpus(tmp_path)
    queries = _queries(random.Random(12), texts)
    got = [[[s.to_dict() for s in AttributionIndex.open(tmp_path / "idx").check(q, **kw)] for q in queries]
           for kw in PARAMS]
    monkeypatch.setattr(AttributionIndex, "_spans", reference_spans)
    monkeypatch.setattr(AttributionIndex, "_source", reference_source)
    want = [[[s.to_dict() for s in AttributionIndex.open(tmp_path / "idx").check(q, **kw)] for q in queries]
            for kw in PARAMS]
    for kw, g, w in zip(PARAMS, got, want):
        for q, a, b in zip(queries, g, w):
            assert a == b, (kw, q)
    spans = [s for ans in want[0] for s in ans]
    kinds = {s["kind"] for s in spans}
    assert len(spans) > 100 and kinds == {"copy", "common", "license_text"}, kinds
    assert any(not s["documents_exact"] for s in spans) and any(s["documents_exact"] for s in spans)
    assert any(len(s["sources"]) == 5 for s in spans)  # more documents than shown
    assert any(not src["verified"] for s in spans for src in s["sources"])
    assert any(src["verified"] for s in spans for src in s["sources"])
    assert len({src["path"] for s in spans for src in s["sources"] if src["path"].startswith("n")}) > 2


class _FakeSegment:
    def __init__(self, rng):
        self.metas = [{"license_file": rng.random() < 0.1, "license": rng.choice([None, "MIT", "Apache-2.0"])}
                      for _ in range(12)]

    def meta(self, d):
        return self.metas[d]


class _Fake:
    """Just what ``_spans`` reads of an index; a source names the match and the span."""

    def __init__(self, rng):
        self.segments = [_FakeSegment(rng), _FakeSegment(rng)]
        self.stride = rng.choice([1, 5, 37])

    def _source(self, m, qa, qb, span_text=None):
        return (m, qa, qb)


def test_spans_of_random_matches_equal_the_reference(monkeypatch):
    """Random matches (overlapping ranges, several per document, verified or not), capped
    windows, counts and truncation: ``report.spans`` gives the reference's spans, sources in
    the same order from the same matches."""
    monkeypatch.setattr(report, "_BLOCK", 256)
    rng = random.Random(16)
    np_rng = np.random.default_rng(16)
    for trial in range(400):
        fake = _Fake(rng)
        norm = "".join(rng.choice(["ab", "c", " ", "\n", "license "]) for _ in range(rng.randrange(60, 300)))
        norm = norm.strip() or "x" * 60
        if rng.random() < 0.2:
            norm = norm[:30] + " permission is hereby granted, free of charge " + norm[30:]
        qh = np_rng.integers(0, rng.choice([3, 50, 10**6]), size=max(1, len(norm) - WINDOW + 1)).astype(np.uint64)
        counts = np_rng.integers(0, 40, size=len(qh))
        capped = np_rng.random(len(qh)) < rng.choice([0.0, 0.01, 0.1])
        offs = np.arange(len(norm) + 1)
        matches = []
        for _ in range(rng.randrange(1, 40)):
            qa = rng.randrange(0, len(norm) - 1)
            qb = rng.randrange(qa + 1, min(len(norm), qa + rng.choice([40, 120, 400])) + 1)
            if matches and rng.random() < 0.3:  # the same range in another document
                qa, qb = rng.choice(matches)[:2]
            matches.append((qa, qb, rng.randrange(2), rng.randrange(12), rng.randrange(100), rng.randrange(100),
                            rng.random() < 0.8, None))
        args = (norm, norm, offs, qh, matches, counts, capped, rng.random() < 0.1, rng.choice([1, 20, 50]),
                rng.choice([0, 1, 2, 5]), rng.choice([0, 2, 10]))
        want = reference_spans(fake, *args)
        got = AttributionIndex._spans(fake, *args)
        assert got == want, trial


@pytest.mark.parametrize("small", [0, report.SMALL_COVER, 10**9])
def test_covering_matches_are_found_in_order(monkeypatch, small):
    monkeypatch.setattr(report, "SMALL_COVER", small)
    monkeypatch.setattr(report, "_BLOCK", 64)  # several numpy blocks
    rng = random.Random(13)
    for _ in range(300):
        m = rng.randrange(1, 40)
        lo = [rng.randrange(0, 60) for _ in range(m)]
        hi = [a + rng.randrange(0, 60) for a in lo]
        ranges = sorted({(lo[i], hi[i]) for i in range(m)} | {(rng.randrange(60), rng.randrange(60, 130))})
        want = [[i for i in range(m) if lo[i] <= qa and hi[i] >= qb] for qa, qb in ranges]
        assert report.covering(ranges, lo, hi) == want


def test_estimates_of_many_spans_equal_one_at_a_time(monkeypatch):
    monkeypatch.setattr(report, "_BLOCK", 500)  # several numpy blocks
    rng = np.random.default_rng(14)
    for _ in range(200):
        n = int(rng.integers(1, 400))
        qh = rng.integers(0, int(rng.integers(1, 60)), size=n).astype(np.uint64)
        counts = rng.integers(0, 30, size=n)
        prev = _previous(qh)
        ranges = []
        for _ in range(int(rng.integers(1, 30))):
            qa = int(rng.integers(0, n))
            ranges.append((qa, int(rng.integers(qa + 1, n + WINDOW))))
        stride = int(rng.integers(1, 38))
        want = [reference_estimate(prev, counts, qa, qb, stride) for qa, qb in ranges]
        assert report.estimates(prev, counts, ranges, stride) == want


def test_a_part_reads_like_a_license_only_when_the_whole_does():
    """What lets ``report.spans`` skip every span of a query whose text names no license phrase:
    lower-casing is per character (final sigma aside, never ASCII) and the whitespace split of a
    part is the whole's, cut."""
    rng = random.Random(15)
    bits = ["a", " ", "\n", "\u0130", "\u212a", "\u03a3", "\u00df", "\x1c", "\x85", "\u00a0", "\u2028", "E",
            "\u0301", "ﬁ"] + [p[: rng.randrange(3, len(p))] for p in LICENSE_PHRASES] + list(LICENSE_PHRASES)
    seen = 0
    for _ in range(4000):
        whole = "".join(rng.choice(bits) for _ in range(rng.randrange(1, 12)))
        whole = "".join(c.upper() if rng.random() < 0.3 else c for c in whole)
        a = rng.randrange(len(whole))
        b = rng.randrange(a, len(whole) + 1)
        if looks_like_license_text(whole[a:b]):
            seen += 1
            assert looks_like_license_text(whole), whole
    assert seen > 100


def reference_chains(rows):
    """``query._chains`` before one packed key (628e8c6)."""
    rows = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]
    starts = np.flatnonzero(np.r_[True, np.any(rows[1:, :2] != rows[:-1, :2], axis=1)])
    ends = np.r_[starts[1:], len(rows)]
    order = np.argsort(starts - ends, kind="stable").tolist()
    seg_of, doc_of, qp_of = (rows[:, j].tolist() for j in range(3))
    starts, ends = starts.tolist(), ends.tolist()
    return [(seg_of[starts[c]], doc_of[starts[c]], qp_of[starts[c] : ends[c]]) for c in order]


def test_chains_from_one_packed_key_equal_the_lexsort():
    from sc2lsp.attribution.query import _chains

    rng = np.random.default_rng(17)
    for _ in range(300):
        n = int(rng.integers(1, 400))
        rows = np.stack([rng.integers(0, int(rng.integers(1, 4)), n), rng.integers(0, int(rng.choice([1, 9, 65536])), n),
                         rng.integers(0, int(rng.choice([1, 40, 2000, 3_000_000])), n)], axis=1).astype(np.int64)
        assert _chains(rows) == reference_chains(rows)
    big = np.array([[1 << 58, 3, 5], [1 << 58, 3, 2], [0, 7, 1], [1 << 58, 2, 9]], dtype=np.int64)  # no packed key
    assert _chains(big) == reference_chains(big) == [(1 << 58, 3, [2, 5]), (0, 7, [1]), (1 << 58, 2, [9])]


def test_document_rows_decode_as_json_loads(tmp_path):
    """``store.json_row`` (the document table's rows, read for every document a query meets)
    answers what ``json.loads`` answers, or raises what it raises."""
    import json

    from sc2lsp.attribution.store import json_row

    rows = [json.dumps(["p.py", 0, -1, "ab" * 20, 1, 3, 0, 0]), json.dumps(['a "q" \\ \u00e9\U0001f600', 1, 2, "b", -1, -1, 1, -1]),
            json.dumps(["\u00e9/x", 0, 0, "c", 0, 0, 0, 0], ensure_ascii=False), ' ["p", 1]', '["p", 1] ', '["p", 1]x',
            '["p", 1', "", "[]", "nul", '"s"', '["\\ud800", 1]']
    raws = [r.encode("utf-8", "surrogatepass") for r in rows]
    raws += [b"\xef\xbb\xbf" + raws[0], rows[0].encode("utf-16"), rows[0].encode("utf-16-le"), b'["\xff", 1]',
             raws[1][:7], raws[1] + b"\x00"]
    texts = _corpus(tmp_path)
    seg = AttributionIndex.open(tmp_path / "idx").segments[0]
    raws += [seg.file.blob("doc_meta", int(seg.meta_off[d]), int(seg.meta_off[d + 1])) for d in range(seg.n_docs)]
    assert len(texts) > 20 and seg.n_docs > 20
    for raw in raws:
        try:
            want = ("ok", json.loads(raw))
        except Exception as e:  # noqa: BLE001 (the very exception is compared)
            want = ("error", type(e), str(e))
        try:
            got = ("ok", json_row(raw))
        except Exception as e:  # noqa: BLE001
            got = ("error", type(e), str(e))
        assert got == want, raw


@pytest.mark.parametrize("long", [1, 700])
def test_newlines_counted_with_numpy_like_str_count(monkeypatch, long):
    from sc2lsp.attribution import lines

    monkeypatch.setattr(lines, "LONG", long)
    monkeypatch.setattr(lines, "_CHUNK", 1000)  # several chunks
    rng = random.Random(18)
    for _ in range(60):
        bits = ["ab", "\n", "\n\n", "\r\n", " "] + (["\u00e9", "\u2028", "\x85"] if rng.random() < 0.3 else [])
        raw = "".join(rng.choice(bits) for _ in range(rng.randrange(0, 4000)))
        for _ in range(10):
            a = rng.randrange(0, len(raw) + 1)
            b = rng.randrange(a, len(raw) + 1)
            assert lines.count_newlines(raw, a, b) == raw.count("\n", a, b)
        nl = lines.Newlines(raw)
        for _ in range(30):
            p = rng.randrange(-5, len(raw) + 6)
            assert nl.before(p) == raw.count("\n", 0, max(0, p))


_BITS = ["def", "x", "_y", "=", "1", "(", ")", ":", " ", "  ", "\t", "\n", "\r\n", "\n\n    ", "\x1c", "\x1f", "\v",
         "\f", " \n ", "\u00e9", "e\u0301", "\u0301", "A\u030a", "\ufb01", "\u00a0", "\u2028", "\u6f22", "\u03a3"]


def _tricky(rng: random.Random, n: int) -> str:
    """Code-like ASCII with every kind of whitespace run, and now and then NFC-sensitive characters."""
    out = []
    for _ in range(n):
        r = rng.random()
        out.append(rng.choice(_BITS[19:]) if r < 0.006 else rng.choice(_BITS[8:19]) if r < 0.3
                   else rng.choice(_BITS[:8]) + str(rng.randrange(100)))
    return "".join(out)


def _cut(rng: random.Random, t: str) -> tuple[int, int]:
    """A slice of ``t``, often starting or ending next to a non-ASCII character."""
    a = rng.randrange(0, max(1, len(t) - 200))
    b = min(len(t), a + rng.randrange(60, 900))
    odd = [i for i in range(a, b) if not t[i].isascii()]
    if odd and rng.random() < 0.6:
        i = rng.choice(odd)
        a, b = (i + 1, b) if rng.random() < 0.5 and b - i > 60 else (a, i)
    return a, b


def test_end_lines_from_the_query_text_equal_the_documents_raw_offsets(tmp_path, monkeypatch):
    """``_source`` counts the query's own text for a source's end line when the document holds the
    span's very (ASCII) text: the same lines as from the document's raw offset of the span's end,
    next to combining marks, non-ASCII runs and whitespace runs of every kind at either edge."""
    rng = random.Random(19)
    src = tmp_path / "src"
    src.mkdir()
    docs = [_tricky(rng, rng.choice([200, 800, 2000])) for _ in range(24)]
    # re-spaced copies: the same normal form from other raw text (the document's own offsets then)
    docs += [t.replace(" ", rng.choice(["  ", "\t"])).replace("\n", rng.choice(["\r\n", " \n"])) for t in docs[:12]]
    for i, t in enumerate(docs):
        (src / f"d{i}.py").write_text(t, newline="")
    build_index([src], tmp_path / "idx")
    queries = []
    for t in docs[:24]:
        for _ in range(8):
            parts = []
            for u in [t] + rng.sample(docs, rng.randrange(0, 3)):
                a, b = _cut(rng, u)
                parts.append(rng.choice(["", "\u0301", "e", " \n", "\u00e9x "]) + u[a:b]
                             + rng.choice(["", "\u0301", "\u030a", "q", "\n", "  ", "\u00a0"]))
            queries.append("zz\n".join(parts))
    tally = {"short": 0, "long": 0}
    real = AttributionIndex._source

    def counted(self, m, qa, qb, span_text=None):
        reg = m[7]
        if m[6] and span_text is not None and span_text.isascii():
            tally["short" if reg.raw.startswith(span_text, reg.raw_offset(m[4] + qa - m[0])) else "long"] += 1
        return real(self, m, qa, qb, span_text)

    monkeypatch.setattr(AttributionIndex, "_source", counted)
    got = [[s.to_dict() for s in AttributionIndex.open(tmp_path / "idx").check(q, min_chars=40)] for q in queries]
    monkeypatch.setattr(AttributionIndex, "_spans", reference_spans)
    monkeypatch.setattr(AttributionIndex, "_source", reference_source)
    want = [[s.to_dict() for s in AttributionIndex.open(tmp_path / "idx").check(q, min_chars=40)] for q in queries]
    for q, a, b in zip(queries, got, want):
        assert a == b, q
    assert tally["short"] > 200 and tally["long"] > 40, tally
    assert sum(1 for ans in want for s in ans for x in s["sources"] if x["end_line"] > x["start_line"]) > 200


def test_a_non_ascii_span_end_takes_the_documents_raw_offset(tmp_path, monkeypatch):
    """Why the query's text stands in only for an ASCII span: here the document's NFC piece
    ("\\n" + "\\u00e9\\u03a9\\u0301", whose length changes) maps the span's last character, "\\u00e9", to
    the line break before it, so its end line is the line before; the query's "\\u00e9" is its own."""
    rng = random.Random(20)
    head, tail = code_like(rng, 6), code_like(rng, 6)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "d.py").write_text(head + "x = 1\n\u00e9\u03a9\u0301\n" + tail)
    build_index([tmp_path / "src"], tmp_path / "idx")
    query = head + "x = 1\n\u00e9 zz\n"
    got = [s.to_dict() for s in AttributionIndex.open(tmp_path / "idx").check(query, min_chars=40)]
    monkeypatch.setattr(AttributionIndex, "_spans", reference_spans)
    monkeypatch.setattr(AttributionIndex, "_source", reference_source)
    want = [s.to_dict() for s in AttributionIndex.open(tmp_path / "idx").check(query, min_chars=40)]
    assert got == want and want[0]["text"].endswith("\n\u00e9")
    src = want[0]["sources"][0]
    assert src["end_line"] == head.count("\n") + 1  # the line of "x = 1", not of "\u00e9"


def test_sources_of_any_part_of_a_match_equal_the_reference(tmp_path, monkeypatch):
    """``_source`` for random parts of real matches (starting or ending on a blank or next to
    non-ASCII text too) gives the reference's lines, whichever way it counts them."""
    rng = random.Random(21)
    (tmp_path / "src").mkdir()
    docs = [_tricky(rng, 600) for _ in range(8)]
    docs += [t.replace(" ", "\t").replace("\n", "\r\n") for t in docs[:4]]
    for i, t in enumerate(docs):
        (tmp_path / "src" / f"d{i}.py").write_text(t, newline="")
    build_index([tmp_path / "src"], tmp_path / "idx")
    seen = []
    real = AttributionIndex._spans

    def keep(self, text, norm, offs, qh, matches, *rest):
        seen.append((text, norm, offs, list(matches)))
        return real(self, text, norm, offs, qh, matches, *rest)

    monkeypatch.setattr(AttributionIndex, "_spans", keep)
    idx = AttributionIndex.open(tmp_path / "idx")
    for t in docs[:8]:
        for _ in range(8):
            a, b = _cut(rng, t)
            idx.check(t[a:b] + rng.choice(["", "\u0301", "\n"]), min_chars=20)
    checked = blank_end = 0
    for text, norm, offs, matches in seen:
        for m in matches:
            if not m[6] or m[1] - m[0] < 2:
                continue
            for _ in range(12):
                qa = rng.randrange(m[0], m[1] - 1)
                qb = rng.randrange(qa + 1, m[1] + 1)
                start, end = raw_span(offs, qa, qb)
                assert idx._source(m, qa, qb, text[start:end]) == reference_source(idx, m, qa, qb), (m, qa, qb)
                checked += 1
                blank_end += norm[qb - 1] in " \n" and text[end - 1] == "\n"
    assert checked > 500 and blank_end > 10, (checked, blank_end)


def test_ascii_offsets_equal_normalize_with_offsets():
    """A query's raw offsets worked out at the positions asked (``report.AsciiOffsets``, ASCII
    text) equal ``normalize_with_offsets``' array at every position, and ``normalize`` gives
    its normal form."""
    from sc2lsp.attribution.normalize import normalize, normalize_with_offsets

    rng = random.Random(22)
    bits = ["a", "bc", "(", " ", "  ", "\t", "\n", "\r\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x1f", "\n \n"]
    checked = 0
    for _ in range(1500):
        text = "".join(rng.choice(bits) for _ in range(rng.randrange(0, 40)))
        norm, want = normalize_with_offsets(text)
        assert normalize(text) == norm
        got = report.AsciiOffsets(text, norm)
        for k in rng.sample(range(len(norm) + 1), len(norm) + 1):  # any order
            assert got[k] == int(want[k]), (text, k)
            checked += 1
        with pytest.raises(IndexError):
            got[len(norm) + 1]
    assert checked > 10000


def test_estimates_over_a_long_query_agree_with_the_one_matrix_path(monkeypatch):
    """Spans spread over a long query are estimated each over its own windows (one matrix of
    ranges x all the windows between them was 10 s for a 953,000-character query); both ways
    give the same counts."""
    import random as _random

    import numpy as _np

    from sc2lsp.attribution import report

    gen = _np.random.default_rng(0)
    n = 200_000
    prev = _np.minimum(gen.integers(-1, n, n), _np.arange(n) - 1)
    counts = gen.integers(0, 5, n)
    r = _random.Random(1)
    ranges = [(a, a + r.randrange(1, 2000)) for a in (r.randrange(n - 2000) for _ in range(300))]
    ranges += [(5, 5), (n - 10, n)]  # empty and at the end
    spread = report.estimates(prev, counts, ranges, 8)
    monkeypatch.setattr(report, "_BLOCK", 1 << 40)  # every range in one matrix
    assert report.estimates(prev, counts, ranges, 8) == spread
    assert any(spread)
