"""Attribution index: normalisation, hashing, build and query on a real corpus written to disk."""

from __future__ import annotations

import inspect
import json
import random
import shlex
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sc2lsp.attribution import AttributionIndex, Document, add_to_index, build_index
from sc2lsp.attribution.build import DEFAULT_STRIDE, MAX_STRIDE
from sc2lsp.attribution.hashing import GUARANTEE, WINDOW, window_hash_reference, window_hashes
from sc2lsp.attribution.licenses import identify, spdx_header
from sc2lsp.attribution.normalize import normalize, normalize_with_offsets, raw_span
from sc2lsp.errors import UserError

MIT = """MIT License

Copyright (c) 2024 Alpha Authors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.
"""

APACHE_HEADER = """# Copyright 2024 The Beta Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
"""

BOILERPLATE = '''def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
'''


def code_like(rng: random.Random, n_lines: int) -> str:
    """Plausible Python with random names: shares no 50-character window with real code."""
    names = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(3, 9)))
             for _ in range(40)]
    lines = []
    for _ in range(n_lines):
        a, b, c = rng.sample(names, 3)
        lines.append(rng.choice([
            f"def {a}({b}, {c}={rng.randint(0, 999)}):",
            f"    {a} = {b}.{c}({rng.randint(0, 99)}) + {rng.random():.4f}",
            f"    if {a} > {b}:\n        return {c}",
            f"    for {a} in range({b}, {rng.randint(1, 50)}):",
            f"{a}[{rng.randint(0, 9)}] = '{b} {c}'",
        ]))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    alpha, beta, ws = root / "alpha", root / "beta", root / "workspace"
    for d in (alpha, beta, ws):
        d.mkdir()
    (alpha / "LICENSE").write_text(MIT)
    (alpha / "wrap.py").write_text(inspect.getsource(textwrap))
    (alpha / "argparse_copy.py").write_text(inspect.getsource(__import__("argparse")))
    (alpha / "decoder.py").write_text(inspect.getsource(__import__("json").decoder))
    rng = random.Random(7)
    for i in range(12):
        (beta / f"mod_{i:02d}.py").write_text(APACHE_HEADER + "\n" + code_like(rng, 30) + "\n\n" + BOILERPLATE)
    (beta / "spdx_tool.py").write_text("# SPDX-License-Identifier: BSD-3-Clause\n" + code_like(rng, 40))
    (ws / "mine.py").write_text(inspect.getsource(shlex))
    return root


@pytest.fixture(scope="module")
def index(corpus, tmp_path_factory) -> AttributionIndex:
    out = tmp_path_factory.mktemp("index") / "idx"
    stats = build_index([corpus], out)
    assert stats.documents == 18 and stats.segments == 1
    return AttributionIndex.open(out)


# -- normalisation and hashing ------------------------------------------------------------------

def test_normalisation_ignores_indentation_and_spacing():
    a = "def f(x):\n    if x:\n        return  x + 1\n\n\n    return 0\n"
    b = "def f(x):\r\n\tif x:\r\n\t\treturn x  +  1\r\n\treturn 0"
    assert normalize(a).rstrip() == normalize(b).rstrip().replace("x + 1", "x + 1")
    assert normalize("  x\u00a0 y") == "x y"
    assert normalize("cafe\u0301") == "caf\u00e9"  # NFC


def test_offsets_agree_with_fast_form_and_point_at_raw_characters():
    rng = random.Random(1)
    pieces = ["a", "bc", " ", "  ", "\t", "\n", "\r\n", "\n\n  ", "e\u0301", "\u00e9", "\u00a0", "\u2028", "x=1"]
    for _ in range(3000):
        t = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        n, offs = normalize_with_offsets(t)
        assert n == normalize(t), repr(t)
        assert len(offs) == len(n) + 1 and offs[-1] == len(t)
        if t.isascii():
            for i, ch in enumerate(n):
                assert t[offs[i]] == ch or (ch in " \n" and t[offs[i]].isspace())
    t = "x = 1\n    y  =  2\n"
    n, offs = normalize_with_offsets(t)
    a = n.index("y")
    assert t[slice(*raw_span(offs, a, a + 5))] == "y  =  2"


def test_window_hashes_match_the_reference_and_stride():
    t = normalize(inspect.getsource(textwrap))[:3000] + "漢字 😀 ü"
    h = window_hashes(t)
    assert len(h) == len(t) - WINDOW + 1
    for i in range(0, len(h), 97):
        assert int(h[i]) == window_hash_reference(t[i : i + WINDOW])
    assert np.array_equal(window_hashes(t, DEFAULT_STRIDE), h[::DEFAULT_STRIDE])
    assert len(np.unique(h)) > 0.99 * len(h)
    assert len(window_hashes("short")) == 0


def test_document_regions_equal_the_full_normal_form(index, corpus):
    seg = index.segments[0]
    rng = random.Random(4)
    for d in range(seg.n_docs):
        raw = seg.raw_text(d)
        full = normalize(raw)
        for _ in range(30):
            lo = rng.randint(-100, len(full))
            hi = lo + rng.randint(0, 3000)
            reg = seg.region(d, raw, lo, hi)
            base, local = reg.base, reg.text
            assert local == full[base : base + len(local)]
            assert base <= max(lo, 0) and base + len(local) >= min(hi, len(full))
            k = rng.randrange(len(local)) if local else None
            if k is not None and not local[k].isspace():
                assert raw[reg.raw_offset(k)] == local[k]


def test_license_detection():
    assert identify(MIT) == "MIT"
    assert identify(APACHE_HEADER) == "Apache-2.0"
    assert spdx_header("// SPDX-License-Identifier: MIT OR Apache-2.0\nint x;") == "MIT OR Apache-2.0"
    assert identify("just some text") is None


def test_a_folder_with_several_license_files(tmp_path):
    """rust-analyzer's LICENSE-MIT + LICENSE-APACHE: dual licensed, both named (it was the
    first file's license only); a project license with a notice of another: both apply."""
    from sc2lsp.attribution.licenses import LicenseResolver

    dual, both = tmp_path / "dual", tmp_path / "both"
    (dual / "src").mkdir(parents=True)
    (dual / "LICENSE-MIT").write_text(MIT)
    (dual / "LICENSE-APACHE").write_text(APACHE_HEADER)
    (both / "src").mkdir(parents=True)
    (both / "LICENSE").write_text(APACHE_HEADER)
    (both / "COPYING.bundled").write_text(MIT)
    assert LicenseResolver(dual).for_file("src/lib.rs", "fn f() {}") == ("Apache-2.0 OR MIT", "files:LICENSE-APACHE,LICENSE-MIT")
    assert LicenseResolver(both).for_file("src/a.py", "x = 1\n") == ("Apache-2.0 AND MIT", "files:COPYING.bundled,LICENSE")
    (dual / "LICENSE-APACHE").unlink()
    assert LicenseResolver(dual).for_file("src/lib.rs", "fn f() {}") == ("MIT", "file:LICENSE-MIT")


# -- query ----------------------------------------------------------------------------------------

def test_reindented_respaced_copy_is_found_with_its_source(index, corpus):
    lines = (corpus / "alpha" / "wrap.py").read_text().splitlines(keepends=True)
    i = next(k for k in range(200, 260) if lines[k].strip())
    copied = lines[i : i + 18]
    edited = "".join(ln.replace("    ", "\t").replace(" = ", "  =  ") for ln in copied)
    suggestion = "x = compute()  # \u2603\n" + edited
    spans = index.check(suggestion)
    assert len(spans) == 1
    s = spans[0]
    assert s.kind == "copy" and s.documents == 1 and s.documents_exact
    assert suggestion[s.start : s.end].strip() == edited.strip()
    src = s.sources[0]
    assert src.path == "alpha/wrap.py" and src.verified
    assert src.root == str(corpus.resolve())
    assert (src.start_line, src.end_line) == (i + 1, i + 18)
    assert src.license == "MIT" and src.license_source == "file:alpha/LICENSE"
    assert s.licenses == ["MIT"]
    json.dumps(s.to_dict())  # JSON-serialisable


def test_any_copy_of_74_chars_is_found(index, corpus):
    docs = [normalize((corpus / "alpha" / n).read_text()) for n in ("wrap.py", "argparse_copy.py", "decoder.py")]
    rng = random.Random(12345)
    junk = "\u2603\u2603\u2603"
    for trial in range(300):
        d = rng.choice(docs)
        length = rng.randint(GUARANTEE, 200)
        a = rng.randint(0, len(d) - length)
        copy = d[a : a + length]
        q = junk + copy + junk
        spans = index.check(q)
        lead, trail = len(copy) - len(copy.lstrip()), len(copy) - len(copy.rstrip())  # spans trim blanks
        assert any(s.start <= 3 + lead and s.end >= 3 + length - trail for s in spans), (trial, a, length, copy)
    # and the guarantee is tight: shorter copies are found only when they contain an indexed window
    missed = sum(not index.check(junk + d[a : a + 60] + junk)
                 for d in docs for a in random.Random(3).sample(range(len(d) - 60), 40))
    assert missed > 0


def test_unrelated_snippets_false_positive_rate(index):
    rng = random.Random(99)
    n, flagged, windows, bloom_pass, postings, chains = 1000, 0, 0, 0, 0, 0
    for _ in range(n):
        st: dict = {}
        flagged += bool(index.check(code_like(rng, 6)[:300], stats=st))
        windows += st["windows"]
        bloom_pass += st["bloom_pass"]
        postings += st["postings"]
        chains += st["chains"]
    assert flagged / n < 0.01
    assert bloom_pass / windows < 0.05  # the Bloom filter's "no" for ~all windows
    assert postings / windows < 0.01  # window hits that verification must reject
    assert chains / n < 0.01 * 300  # candidate groups per snippet stay rare


def test_license_headers_and_boilerplate_are_labelled(index):
    spans = index.check("import os\n" + APACHE_HEADER + "\nvalue = 1\n")
    assert spans and all(s.kind == "license_text" for s in spans)
    assert max(s.documents for s in spans) == 12
    st: dict = {}
    spans = index.check("x = 1\n" + BOILERPLATE, stats=st)
    assert len(spans) == 1 and spans[0].kind == "common" and len(spans[0].sources) == 5
    # past max_sources + 1 verified documents the other copies are estimated from the postings
    assert st["verified"] == 6 and not spans[0].documents_exact and 11 <= spans[0].documents <= 13
    spans = index.check("x = 1\n" + BOILERPLATE, common_threshold=20, max_sources=12)
    assert spans[0].kind == "copy" and spans[0].documents == 12 and spans[0].documents_exact
    lic = index.check(MIT[200:600])
    assert lic and lic[0].kind == "license_text" and lic[0].sources[0].license_file


def test_postings_capped_per_hash_keep_the_total_count(tmp_path):
    rng = random.Random(11)
    shared = code_like(rng, 12)
    docs = [Document(path=f"d{i}.py", text=code_like(rng, 8) + shared + code_like(rng, 8)) for i in range(30)]
    build_index(docs, tmp_path / "idx", cap=4)
    st: dict = {}
    spans = AttributionIndex.open(tmp_path / "idx").check("\u2603\n" + shared, stats=st)
    assert len(spans) == 1 and spans[0].kind == "common" and not spans[0].documents_exact
    assert 25 <= spans[0].documents <= 35  # from the capped hashes' totals, not the 4 postings kept
    assert st["verified"] <= 4 * len(shared) // DEFAULT_STRIDE + 4


def test_identical_files_are_verified_once_and_all_listed(tmp_path):
    text = code_like(random.Random(21), 40)
    build_index([Document(path="a/x.py", text=text), Document(path="b/x.py", text=text)], tmp_path / "idx")
    st: dict = {}
    spans = AttributionIndex.open(tmp_path / "idx").check(text[300:900], stats=st)
    assert len(spans) == 1 and spans[0].documents == 2 and spans[0].documents_exact
    assert sorted(s.path for s in spans[0].sources) == ["a/x.py", "b/x.py"]
    assert st["verified"] == 1


def test_spdx_header_license_reaches_the_source(index, corpus):
    body = (corpus / "beta" / "spdx_tool.py").read_text().splitlines(keepends=True)
    spans = index.check("".join(body[5:15]))
    assert spans and spans[0].sources[0].license == "BSD-3-Clause"
    assert spans[0].sources[0].license_source == "spdx-header"


def test_workspace_is_excluded(index, corpus):
    text = (corpus / "workspace" / "mine.py").read_text()[2000:3000]
    assert index.check(text) and index.check(text)[0].sources[0].path == "workspace/mine.py"
    assert index.check(text, exclude=[corpus / "workspace"]) == []
    assert index.check(text, exclude=[corpus / "workspace" / "mine.py"]) == []
    assert index.overlap(text, exclude=[corpus / "workspace"]) == []


def test_overlap_merges_spans(index, corpus):
    wrap = (corpus / "alpha" / "wrap.py").read_text()
    text = wrap[1000:1400] + "\n\u2603 novel line of text that is not in the corpus \u2603\n" + wrap[5000:5400]
    spans = index.overlap(text)
    assert len(spans) == 2 and spans[0][0] == 0 and spans[1][1] == len(text)


def test_in_memory_documents_and_incremental_add(tmp_path, corpus):
    rng = random.Random(5)
    a, b = code_like(rng, 40), code_like(rng, 40)
    out = tmp_path / "idx"
    build_index([Document(path="gen/a.py", text=a, repository="acme/gen", license="MIT")], out)
    idx = AttributionIndex.open(out)
    assert idx.check(a[100:400])[0].sources[0].repository == "acme/gen"
    assert idx.check(b[100:400]) == []
    add_to_index(out, [Document(path="gen/b.py", text=b), corpus / "alpha" / "decoder.py"])
    idx = AttributionIndex.open(out)
    assert idx.info()["segments"] == 2
    assert idx.check(b[100:400])[0].sources[0].path == "gen/b.py"
    assert idx.check(a[100:400])[0].sources[0].path == "gen/a.py"
    dec = (corpus / "alpha" / "decoder.py").read_text()
    assert idx.check(dec[1000:1300])[0].sources[0].license == "MIT"
    assert not list(out.glob("*.tmp-*"))
    # rebuilding replaces the old segments
    build_index([Document(path="c.py", text=b)], out)
    assert len(list(out.glob("seg-*"))) == 1


def test_changed_file_is_not_verified(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    f = src / "m.py"
    text = inspect.getsource(textwrap)
    f.write_text(text)
    build_index([src], tmp_path / "idx")
    idx = AttributionIndex.open(tmp_path / "idx")
    snippet = text[3000:3400]
    assert idx.check(snippet)[0].sources[0].verified
    f.write_text(text.replace("def ", "def  "))  # same normal form, other bytes
    spans = AttributionIndex.open(tmp_path / "idx").check(snippet)
    assert spans and not spans[0].sources[0].verified and spans[0].sources[0].start_line is None


# -- bad input ------------------------------------------------------------------------------------

def test_empty_long_and_invalid_input(index, corpus):
    assert index.check("") == [] and index.check(" \n\t") == [] and index.overlap("") == []
    with pytest.raises(UserError, match="UTF-8"):
        index.check(b"\xff\xfe broken")
    big = (corpus / "alpha" / "argparse_copy.py").read_text()
    big = (big * (1_000_000 // len(big) + 1))[:1_000_000]
    spans = index.check(big)  # bounded: the limit on verified groups keeps this to seconds
    assert spans and spans[0].sources[0].path == "alpha/argparse_copy.py"
    st: dict = {}
    assert index.check(code_like(random.Random(2), 40000)[:1_000_000], stats=st) == []
    assert st["windows"] > 800_000  # normalisation removes indentation
    with pytest.raises(UserError, match="limit"):
        index.check("x" * 1_000_001)
    with pytest.raises(UserError):
        index.check(None)


def test_damaged_indexes_give_one_clear_error(tmp_path, index):
    with pytest.raises(UserError, match="does not exist"):
        AttributionIndex.open(tmp_path / "nope")
    with pytest.raises(UserError, match="not an attribution index"):
        AttributionIndex.open(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        build_index([tmp_path / "missing"], tmp_path / "out")
    src = Path(index.path)
    seg = next(src.glob("seg-*"))
    for name, damage in [("truncated", lambda p: p.write_bytes(p.read_bytes()[:-100])),
                         ("version", lambda p: p.write_bytes(p.read_bytes()[:8] + b"\x63" + p.read_bytes()[9:])),
                         ("magic", lambda p: p.write_bytes(b"garbage!" + p.read_bytes()[8:]))]:
        d = tmp_path / name
        d.mkdir()
        (d / "manifest.json").write_bytes((src / "manifest.json").read_bytes())
        (d / seg.name).write_bytes(seg.read_bytes())
        damage(d / seg.name)
        with pytest.raises(UserError, match="rebuild"):
            AttributionIndex.open(d)
    d = tmp_path / "oldversion"
    d.mkdir()
    m = json.loads((src / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps({**m, "version": 0}))
    with pytest.raises(UserError, match="version 0"):
        AttributionIndex.open(d)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="JSON"):
        AttributionIndex.open(d)
    with pytest.raises(UserError, match="stride"):
        build_index([Document(path="a", text="x" * 100)], tmp_path / "s", stride=MAX_STRIDE + 1)


def test_region_raw_offset_from_a_prefix_matches_the_whole_piece():
    # Region.raw_offset normalises only a prefix of its piece; every offset must equal the one
    # from normalising the whole piece (whitespace runs and NFC-composable text across the cuts)
    from sc2lsp.attribution.segment import Region

    rng = random.Random(3)
    parts = ["x", "é", "e\u0301", "\u0301", " ", "\n", "  \n ", "\t", "ab", "\u3000", "中", "."]
    for i in range(40):
        blank = " " * rng.randrange(1, 60) if i % 2 else ""  # mostly blank: cuts land near k
        piece = "".join(rng.choice(parts) + blank for _ in range(rng.randrange(200, 3000)))
        norm, offs = normalize_with_offsets(piece)
        for k in sorted(rng.sample(range(len(norm)), min(40, len(norm)))):
            assert Region(0, norm, 7, piece, piece).raw_offset(k) == int(offs[k]) + 7
        reg = Region(0, norm, 0, piece, piece)  # growing one region's prefix: same offsets
        for k in range(0, len(norm), 97):
            assert reg.raw_offset(k) == int(offs[k])
