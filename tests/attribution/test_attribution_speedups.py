"""The compiled kernels (``sc2lsp/attribution/_speedups.c``) give exactly the answers of the Python
code they stand for: ``normalize_ws`` that of ``normalize`` after NFC (every Unicode whitespace and
line break), ``scan`` that of ``rawsearch.scan_raw_py`` (every ``RawHit`` field and the kept token
positions, on texts of each string kind), and whole queries the same spans with and without them.
Bad arguments are errors, never a crash or a wrong answer. The Python code runs when the module is
not built or ``SC2LSP_NO_SPEEDUPS`` is set."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sc2lsp.attribution import AttributionIndex, Document, build_index, normalize as normalize_mod, rawsearch
from sc2lsp.attribution.hashing import WINDOW
from sc2lsp.attribution.normalize import normalize
from sc2lsp.attribution.rawsearch import DocText, scan_raw_py, window_parts
from sc2lsp.attribution.speedups import C

from test_attribution_query_path import VOCABS, _code, edited_query

needs_c = pytest.mark.skipif(C is None, reason="sc2lsp.attribution._speedups is not built")

#: Every whitespace character (str.isspace) and every line break (str.splitlines).
SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]


def _python_normalize(text: str) -> str:
    return "\n".join(filter(None, [" ".join(line.split()) for line in text.splitlines()]))


def test_the_module_is_built_where_a_compiler_is():
    # `pip install -e .` (make install) builds it; without a C compiler the install goes on without it
    if os.environ.get("SC2LSP_NO_SPEEDUPS"):
        pytest.skip("SC2LSP_NO_SPEEDUPS is set")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: the Python code runs")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no Python headers (Python.h) here: the Python code runs")
    assert C is not None, "sc2lsp.attribution._speedups is not built: run `pip install -e .` in the checkout"
    assert C.API == 1


@needs_c
def test_normalize_ws_is_split_and_join_for_every_whitespace():
    assert "\x1c" in SPACES and "\u2028" in SPACES and "\x85" in SPACES and "\u200b" not in SPACES
    assert all(b.isspace() for b in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")  # every break is whitespace
    rng = random.Random(3)
    alphabet = ["a", "b", "(", "é", "中", "\U0001f600", "\u200b", "\ud800"] + SPACES  # (a lone surrogate too)
    for kind_chars in (["a", "(", " ", "\n", "\t", "\r", "\x1f"], ["a", "\xe9", "\xa0", "\x85", " ", "\n"], alphabet):
        for _ in range(3000):
            text = "".join(rng.choice(kind_chars) for _ in range(rng.randrange(0, 30)))
            got = C.normalize_ws(text)
            assert got == _python_normalize(text), repr(text)
            # a canonical str (isascii is a flag of the object: wrong for a needlessly wide one)
            assert got.isascii() == all(ord(c) < 128 for c in got)
    for s in SPACES:  # each alone, between words, and doubled
        for text in (s, f"a{s}b", f"a{s}{s}b", f" a{s}\n b "):
            assert C.normalize_ws(text) == _python_normalize(text), repr(text)
    with pytest.raises(TypeError):
        C.normalize_ws(b"bytes")


@needs_c
def test_normalize_gives_the_same_with_and_without_the_module(monkeypatch):
    rng = random.Random(5)
    texts = [_code(rng, 40, VOCABS[v]) for v in sorted(VOCABS) for _ in range(5)]
    texts += ["e\u0301 caf\u00e9\u3000x\u2028y", "\ufb01 \u212b\n\n A\u030a"]  # NFC changes these
    fast = [normalize(t) for t in texts]
    monkeypatch.setattr(normalize_mod, "_C", None)
    assert [normalize(t) for t in texts] == fast


def _kinds(rng: random.Random, raw: str) -> list[str]:
    """``raw`` as is, and with characters that make it a 1-, 2- and 4-byte string."""
    return [raw, raw.replace(" = ", " \xa0=\x85 "), raw.replace("x", "\u0416"), raw.replace("(", "(\U0001f600"),
            raw.replace(")", "\udc80)")]  # (a lone surrogate: files are decoded with surrogatepass)


@needs_c
@pytest.mark.parametrize("vocab", sorted(VOCABS))
def test_scan_is_the_python_scan_on_every_string_kind(vocab):
    rng = random.Random(sum(map(ord, vocab)) + 1)
    checked = 0
    for trial in range(8):
        base = _code(rng, rng.choice([30, 300]), VOCABS[vocab])
        for raw in _kinds(rng, base):
            norm_doc = normalize(raw)
            if len(norm_doc) < 3 * WINDOW:
                continue
            doc_py, doc_c = DocText(raw), DocText(raw)
            for _ in range(3):
                norm = edited_query(rng, norm_doc)
                if norm is None:
                    continue
                for qp in rng.sample(range(len(norm) - WINDOW + 1), min(10, len(norm) - WINDOW + 1)):
                    for min_chars in (0, 50, 120):
                        want = scan_raw_py(raw, norm, qp, min_chars, doc_py.occ)
                        got = rawsearch._scan_compiled(raw, norm, qp, min_chars, doc_c.occ)
                        assert ((got.result, got.p, got.sb, got.sa, list(got.held), got.resume)
                                == (want.result, want.p, want.sb, want.sa, list(want.held), want.resume)), (trial, qp)
                        checked += 1
            assert doc_c.occ == doc_py.occ  # the same kept positions
    assert checked > 500


@needs_c
def test_scan_refuses_bad_arguments():
    norm = normalize("def f(x):\n    return some_longer_token(x) + 1\n" * 3)
    tok, k, q_before, q_after, win_b, win_a = window_parts(norm, 0)
    raw = norm
    args = [raw, tok, q_before, q_after, len(win_b), len(win_a), (), False, rawsearch._nonblanks(norm), k, len(norm),
            50, WINDOW, 256, 16]
    assert C.scan(*args)[1] is not None  # the arguments as the caller gives them: found
    for i, bad, err in [(6, (len(raw) + 5,), ValueError), (6, (-1,), ValueError), (6, ("x",), TypeError),
                        (0, b"bytes", TypeError), (1, "", ValueError), (4, len(q_before) + 1, ValueError),
                        (8, (1, 2), TypeError)]:
        with pytest.raises(err):
            C.scan(*(args[:i] + [bad] + args[i + 1 :]))


@needs_c
def test_queries_give_the_same_spans_with_and_without_the_module(tmp_path, monkeypatch):
    rng = random.Random(9)
    docs, queries = [], []
    for i in range(30):
        vocab = VOCABS[sorted(VOCABS)[i % len(VOCABS)]]
        text = _code(rng, 120, vocab + ["def", "return", "value_%d" % i])
        docs.append(Document(path=f"r{i % 4}/m{i}.py", text=text, repository=f"acme/r{i % 4}"))
        a = rng.randrange(len(text) // 2)
        q = text[a : a + 700]
        queries.append(q.replace("  ", " ").replace("\t", "    "))  # a re-spaced copy
        queries.append(text[:300] + _code(rng, 10, vocab) + text[-400:])
    build_index(docs, tmp_path / "idx")

    def answers() -> list:
        idx = AttributionIndex.open(tmp_path / "idx")
        return [[s.to_dict() for s in idx.check(q)] for q in queries]

    fast = answers()
    assert sum(map(len, fast)) > 30  # the queries do find spans
    monkeypatch.setattr(rawsearch, "_C", None)
    monkeypatch.setattr(normalize_mod, "_C", None)
    assert answers() == fast


def test_the_environment_can_turn_the_module_off():
    code = "from sc2lsp.attribution import speedups, rawsearch; print(speedups.C is None, rawsearch._C is None)"
    env = dict(os.environ, SC2LSP_NO_SPEEDUPS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
