"""Post-processing of model output: golden cases (tests/golden/postprocess/*.json) and invariants.

Each golden file holds name, why, language, prefix, suffix, raw model output, the expected
suggestion and the steps expected to change it. Texts are a string or a list of lines (joined
with "\\n"). ``SC2LSP_UPDATE_GOLDEN=1`` rewrites ``expected`` and ``applied``; check the diff by eye.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from sc2lsp.context.syntax import syntax_checker
from sc2lsp.core.postprocess import (
    PostprocessOptions,
    advance_suggestion,
    postprocess,
    postprocess_trace,
)

GOLDEN = Path(__file__).parents[1] / "golden" / "postprocess"
UPDATE = os.environ.get("SC2LSP_UPDATE_GOLDEN") == "1"
CASES = sorted(GOLDEN.glob("*.json"))


def text(value: str | list[str]) -> str:
    return "\n".join(value) if isinstance(value, list) else value


def stored(value: str) -> str | list[str]:
    return value.split("\n") if "\n" in value else value


def run_case(case: dict):
    options = PostprocessOptions(language=case["language"], **case.get("options", {}))
    checker = None
    if case["syntax"]:
        checker = syntax_checker(case["language"])
        assert checker is not None, f"no tree-sitter grammar installed for {case['language']}"
    return postprocess_trace(text(case["raw"]), text(case["prefix"]), text(case["suffix"]), options, checker,
                             truncated=case.get("truncated", False))


def test_enough_golden_cases():
    cases = [json.loads(p.read_text(encoding="utf-8")) for p in CASES]
    assert len(cases) >= 25
    assert {"python", "javascript"} <= {c["language"] for c in cases}
    assert all(p.stem == c["name"] for p, c in zip(CASES, cases))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path):
    case = json.loads(path.read_text(encoding="utf-8"))
    result = run_case(case)
    if UPDATE:
        case["expected"], case["applied"] = stored(result.text), list(result.applied)
        path.write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert result.text == text(case["expected"]), f"{path.name}: {case['why']}"
    assert list(result.applied) == case["applied"], f"{path.name}: steps differ"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_result_is_a_prefix_of_the_raw_output(path: Path):
    case = json.loads(path.read_text(encoding="utf-8"))
    out = run_case(case).text.replace("\r\n", "\n")
    assert text(case["raw"]).replace("\r\n", "\n").startswith(out)


@pytest.mark.parametrize("path", [p for p in CASES if json.loads(p.read_text())["syntax"]],
                         ids=lambda p: p.stem)
def test_syntax_step_adds_no_error(path: Path):
    case = json.loads(path.read_text(encoding="utf-8"))
    check = syntax_checker(case["language"])
    prefix, suffix = text(case["prefix"]), text(case["suffix"])
    raw_errors = check(prefix + text(case["raw"]) + suffix)
    base = check(prefix + suffix)
    assert check(prefix + run_case(case).text + suffix) <= base
    assert raw_errors > base or "syntax" not in run_case(case).applied


def test_random_output_never_grows_and_is_deterministic():
    rng = random.Random(3)
    alphabet = ["a", "b", "x", " ", "    ", "\n", "(", ")", "[", "]", "{", "}", ":", ",", "'", '"', "#", "=", "1"]
    prefixes = ["def f(x):\n    ", "foo(", "if (x) {", "", "x = [\n    1,\n    ", "s = 'a"]
    suffixes = ["\n", ")\n", "\n}\n", "", "b)\n", "\n    return x\n"]
    for _ in range(400):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        prefix, suffix = rng.choice(prefixes), rng.choice(suffixes)
        lang = rng.choice(["python", "javascript"])
        out = postprocess(raw, prefix, suffix, PostprocessOptions(language=lang))
        assert raw.startswith(out), (raw, prefix, suffix)
        assert out == postprocess(raw, prefix, suffix, PostprocessOptions(language=lang))
        assert out == "" or out.strip()
        if any(c not in ")]}\"'`;,: \t" for c in suffix.split("\n")[0]):
            assert "\n" not in out  # mid-line -> single line


def test_syntax_hook_calls_are_bounded():
    calls = []

    def always_worse(t: str) -> int:
        calls.append(t)
        return len(t)  # every added character is "an error": only "" passes

    raw = "\n".join(f"    v{i} = {i} + {i}" for i in range(30)).lstrip()
    out = postprocess(raw, "def f():\n    ", "\n", PostprocessOptions(max_syntax_checks=10), always_worse)
    assert out == "" and len(calls) <= 10


def test_syntax_hook_gets_prefix_candidate_suffix():
    seen = []
    postprocess("return 1", "def f():\n    ", "\n", syntax_errors=lambda t: seen.append(t) or 0)
    assert seen == ["def f():\n    \n", "def f():\n    return 1\n"]  # baseline, then the candidate


def test_crlf_round_trip():
    out = postprocess("a = 1\n    b = 2", "def f():\r\n    ", "\r\n")
    assert out == "a = 1\r\n    b = 2"


@pytest.mark.parametrize("shown, typed, rest", [
    ("return x + 1", "", "return x + 1"),
    ("return x + 1", "ret", "urn x + 1"),
    ("return x + 1", "return x + 1", ""),
    ("return x + 1", "return y", None),
    ("\n    return x", "\n    ", "return x"),  # Enter + the editor's auto-indent
    ("\n    return x", "\n        ", None),  # more indent than the suggestion
    ("é😀x", "é😀", "x"),
])
def test_advance_suggestion(shown, typed, rest):
    assert advance_suggestion(shown, typed) == rest


def test_options_validated():
    with pytest.raises(ValueError):
        PostprocessOptions(max_lines=0)


def test_loops_at_the_end_of_a_cut_off_generation():
    from sc2lsp.core.line_steps import loop_start, unfinished_cut

    assert loop_start("x = [0, 0, 0]") is None  # a repeat that ends is no loop
    assert loop_start("ab" * 7) is None and loop_start("ab" * 8) == (0, 2)  # 16 characters at least
    assert loop_start("foo(" + "bar, " * 4) == (4, 5)
    assert loop_start("print('" + "the cat sat on " * 3) == (7, 15)  # a unit of 15 characters
    assert loop_start(("x" * 41 + "y") * 3) is None  # units of up to 40 characters
    assert loop_start("=" * 15) is None and loop_start("# " + "=" * 16) == (2, 1)
    assert unfinished_cut("return f." + "read(f." * 5 + "re") == "return f.read("  # one copy of the loop
    assert unfinished_cut("a\nb(c(c(c(c(c(c(c(c(c(") == "a"  # the loop, then the unfinished line
    assert unfinished_cut("if x:\n    return f(x") == "if x:"
    assert unfinished_cut("return f(x") == "return f(x"  # one line, no loop: kept
