"""``settled``: when a generation can stop because what it would add is cut anyway.

The property: wherever ``settled(raw[:k])`` holds, ``postprocess(raw[:k]) == postprocess(raw)``
(the generation stopped there shows what the whole generation would have shown, also when a limit
ended the whole one: ``truncated``). Checked at
every cut of the golden cases' raw outputs, and of continuations taken from real files on disk
(this repository and the Python standard library), some of them edited to repeat a block, to
re-write the line after the cursor, or to leave the block early.
"""

from __future__ import annotations

import json
import random
import sysconfig
from pathlib import Path

import pytest

from sc2lsp.context.syntax import syntax_checker
from sc2lsp.core.postprocess import PostprocessOptions, postprocess, settled

ROOT = Path(__file__).parents[2]
GOLDEN = sorted((ROOT / "tests" / "golden" / "postprocess").glob("*.json"))
LANG = {".py": "python", ".js": "javascript", ".ts": "typescript", ".rs": "rust", ".go": "go", ".c": "c"}


def _text(value: str | list[str]) -> str:
    return "\n".join(value) if isinstance(value, list) else value


def _cuts(raw: str, rnd: random.Random, every: bool):
    """Where to cut ``raw``: everywhere, or around every newline plus some places between."""
    if every:
        return range(len(raw) + 1)
    near = {i + d for i, c in enumerate(raw) if c == "\n" for d in (0, 1, 2)}
    return sorted(k for k in near | {rnd.randrange(len(raw) + 1) for _ in range(8)} | {len(raw)} if k <= len(raw))


def _check_all_cuts(raw, prefix, suffix, options, checker=None, rnd=None, every=True) -> int:
    """Assert the property at each cut; the number of settled cuts. The whole output may have
    ended at an end token or at a limit (``truncated``): the same either way."""
    full = postprocess(raw, prefix, suffix, options, checker)
    cut_off = postprocess(raw, prefix, suffix, options, checker, truncated=True)
    hits = 0
    for k in _cuts(raw, rnd or random.Random(0), every):
        if settled(raw[:k], prefix, suffix, options):
            hits += 1
            got = postprocess(raw[:k], prefix, suffix, options, checker)
            assert got == full == cut_off, f"settled at {k} ({raw[:k]!r}) but shows {got!r}, not {full!r} / {cut_off!r}"
    return hits


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_outputs_stopped_where_settled_show_the_same(path: Path):
    case = json.loads(path.read_text(encoding="utf-8"))
    options = PostprocessOptions(language=case["language"], **case.get("options", {}))
    checker = syntax_checker(case["language"]) if case["syntax"] else None
    raw, prefix, suffix = (_text(case[k]) for k in ("raw", "prefix", "suffix"))
    _check_all_cuts(raw, prefix, suffix, options, checker)


def _real_files() -> list[Path]:
    ours = sorted((ROOT / "sc2lsp").rglob("*.*")) + sorted((ROOT / "editors" / "vscode" / "src").glob("*.ts"))
    ours += sorted((ROOT / "tests" / "context" / "ts_project").rglob("*.ts"))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    theirs = sorted(stdlib.glob("*.py"))[:200] + sorted((stdlib / "json").glob("*.py"))
    return [p for p in ours + theirs if p.suffix in LANG and p.stat().st_size < 300_000]


def _edit(above: list[str], cont: list[str], suffix_lines: list[str], rnd: random.Random) -> list[str]:
    """A continuation the model might write instead: a block of up to 4 lines written again
    (from the continuation or from the lines above the cursor), the next line re-written, a line
    leaving the block, or as it stands."""
    kind = rnd.randrange(4)
    at = rnd.randrange(len(cont) + 1)
    if kind == 0:
        seen = above[-4:] + cont[:at]  # what stands before the insertion point
        if seen:
            p = rnd.randint(1, min(4, len(seen)))
            start = rnd.randrange(len(seen) - p + 1)
            return cont[:at] + seen[start:start + p] * rnd.randint(1, 2) + cont[at:]
    if kind == 1:
        nxt = next((s for s in suffix_lines if s.strip()), None)
        if nxt is not None:
            return cont[:at] + [nxt] + cont[at:]
    if kind == 2:
        return cont[:at] + ["x = 1", "}"] + cont[at:]
    return cont


@pytest.mark.parametrize("seed", range(4))
def test_real_continuations_stopped_where_settled_show_the_same(seed: int):
    rnd = random.Random(seed)
    files = _real_files()
    assert len(files) > 100 and {"c", "typescript"} <= {LANG[p.suffix] for p in files}
    cases = hits = 0
    while cases < 200:
        path = rnd.choice(files)
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        if len(lines) < 10:
            continue
        i = rnd.randrange(1, len(lines) - 2)
        # the cursor at the end of line i (multi-line suggestions: nothing after it on its line),
        # or at the start of a fresh blank line there
        col = len(lines[i]) if rnd.random() < 0.5 else 0
        head = lines[i][:col]
        cont_len = rnd.randint(1, 30)
        cont = lines[i + 1: i + 1 + cont_len]
        suffix_lines = lines[i + 1 + rnd.randrange(0, 3):]
        cont = _edit(lines[:i] + [head] if col else lines[:i], cont, suffix_lines, rnd)
        raw = "\n" + "\n".join(cont) if col else "\n".join(cont)
        raw += rnd.choice(["", "\n", "\n    ", "  partial"])
        prefix = "\n".join(lines[:i] + [head])
        suffix = "\n" + "\n".join(suffix_lines) if col else "\n".join(suffix_lines)
        options = PostprocessOptions(language=LANG[path.suffix], max_lines=rnd.choice([4, 16]))
        hits += _check_all_cuts(raw, prefix, suffix, options, rnd=rnd, every=False) > 0
        cases += 1
    assert hits >= 0.3 * cases, f"only {hits} of {cases} generations settled before their end"


def test_settled_cases():
    opts = PostprocessOptions(language="python")
    prefix = "def f(x):\n    if x:\n        "
    # the block ends at a complete line, or where a line's indentation alone ends it: settled
    assert settled("return 1\n    return 2\n", prefix, "\n", opts)
    assert settled("return 1\n    r", prefix, "\n", opts)
    assert settled("return 1\n    ", prefix, "\n", opts) is False  # no indentation yet
    assert settled("return 1\n        y = 2\n", prefix, "\n", opts) is False
    # after an opener the ending line's code decides (``else:`` continues): it must be complete
    opener = "def f(x):\n    if x:"
    assert settled("\n        return 1\n    els", opener, "\n", opts) is False
    assert settled("\n        return 1\n    else:\n        return 2\n    y = 3\n", opener, "\n", opts)
    assert settled("\n        return 1\n    y = 3\n", opener, "\n", opts)
    # mid-line (the generation stops at the newline), one line, multiline off, a special token
    assert settled("return 1\n    return 2\n", prefix, "foo)\n", opts) is False
    assert settled("return 1", prefix, "\n", opts) is False
    assert settled("return 1\n    return 2\n", prefix, "\n", PostprocessOptions(language="python", multiline=False)) is False
    assert settled("return 1\n    return 2\n<file_sep>", prefix, "\n", opts) is False
    # a repeated line settles once the lines that could start an earlier repeat are complete
    rep = "a = g()\nb = h()\nb = h()\n"
    assert settled(rep, "", "", opts) is False
    assert settled(rep + "c = 1\nd = 2\n", "", "", opts)
    # max_lines
    many = "".join(f"v{i} = {i}\n" for i in range(6))
    assert settled(many[: many.index("v5")], "", "", PostprocessOptions(language="python", max_lines=2))
    assert settled(many, "", "", PostprocessOptions(language="python", max_lines=4)) is False
    # CRLF documents
    assert settled("return 1\r\n    return 2\r\n", prefix.replace("\n", "\r\n"), "\r\n", opts)


def test_a_repeat_reaching_past_the_complete_lines_keeps_it_unsettled():
    """The case behind the margin: ``next_lines`` cuts before line 2 of the complete lines, but the
    next line completes a 4-line repeat that starts in the lines above the cursor and cuts sooner."""
    opts = PostprocessOptions(language="python")
    prefix, suffix = "a1()\na2()\na3()\na4()\n", "\n\na3()\n"
    done = "z()\na2()\na3()\na4()\n"
    more = done + "z()\n"
    assert postprocess(done, prefix, suffix, opts) == "z()\na2()"
    assert postprocess(more, prefix, suffix, opts) == "z()"
    assert settled(done, prefix, suffix, opts) is False
    assert settled(more + "q()\nr()\n", prefix, suffix, opts)
