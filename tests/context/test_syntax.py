"""tree-sitter syntax error counts on real code, and syntax-validated truncation on a real file."""

from __future__ import annotations

import importlib.util
import random
import textwrap
import threading
from pathlib import Path

import pytest

from sc2lsp.context.syntax import GRAMMARS, SyntaxChecker, available_languages, load_language, syntax_checker
from sc2lsp.core.postprocess import PostprocessOptions, postprocess_trace

REAL_PY = Path(textwrap.__file__).read_text(encoding="utf-8")  # ~500 lines of real, stable code

JS = """\
import fs from 'fs';

export function readLines(path) {
  const text = fs.readFileSync(path, 'utf8');
  return text.split('\\n').filter((line) => line.length > 0);
}

class Counter {
  #n = 0;
  inc() { this.#n += 1; return `count ${this.#n}`; }
}
"""


def test_installed_grammars_are_found_by_name_and_alias():
    assert {"python", "javascript"} <= set(available_languages())
    assert syntax_checker("py") is syntax_checker("python")
    assert syntax_checker("javascriptreact") is syntax_checker("javascript")
    assert syntax_checker("cobol") is None


def test_every_table_entry_loads_when_its_wheel_is_installed():
    for name, (module, _) in GRAMMARS.items():
        installed = importlib.util.find_spec(module) is not None
        assert (load_language(name) is not None) == installed, name


def test_real_code_has_no_errors():
    assert syntax_checker("python")(REAL_PY) == 0
    assert syntax_checker("javascript")(JS) == 0


@pytest.mark.parametrize("language, broken, at_least", [
    ("python", "def f(x:\n    return x\n", 1),              # unclosed parameter list
    ("python", "if x\n    y = 1\n", 1),                     # missing ':'
    ("python", "x = (1, 2\nprint(x)\n", 1),
    ("python", "return = 3\n", 1),
    ("javascript", "let x = [1, 2;\n", 1),                  # MISSING "]"
    ("javascript", "function f() {\n  return 1;\n", 1),     # MISSING "}"
    ("javascript", "const a = ;\n", 1),
])
def test_broken_code_has_errors(language, broken, at_least):
    assert syntax_checker(language)(broken) >= at_least


def test_errors_add_up_and_unicode_is_fine():
    check = syntax_checker("python")
    one = REAL_PY.replace("def dedent(text):", "def dedent(text:")
    two = one.replace("def indent(text, prefix, predicate=None):", "def indent(text,, prefix, predicate=None):")
    assert one != REAL_PY and two != one
    assert 0 < check(one) < check(two)
    assert check("s = 'naïve 😀 漢字'\nt = s.upper()\n") == 0
    assert check("s = 'naïve 😀 漢字'\nt = s.upper(\n") >= 1


def test_incremental_reparse_counts_like_a_fresh_parse():
    incremental = SyntaxChecker(load_language("python"), cache_size=0)
    fresh = SyntaxChecker(load_language("python"), cache_size=0, incremental=False)
    rng = random.Random(0)
    pieces = ["(", ")", ":", "\n", "    ", "def ", "x", "é😀", "'", '"""', "[", "]", ",", " + "]
    text, differ, counts = REAL_PY, 0, set()
    for _ in range(150):
        if rng.random() < 0.2:
            text = REAL_PY  # a jump back, like the baseline after candidates
        else:
            a = rng.randint(0, len(text))
            b = min(len(text), a + rng.randint(0, 30))
            text = text[:a] + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4))) + text[b:]
        n = incremental(text)
        differ += n != fresh(text)
        counts.add(n)
    assert differ == 0 and len(counts) > 3  # the edits did produce various error counts


def test_checker_is_thread_safe():
    check = syntax_checker("python")
    texts = [REAL_PY, REAL_PY + "\ndef broken(:\n", "x = 1\n", "if x\n"]
    expected = [check(t) for t in texts]
    results: list[list[int]] = []

    def work():
        results.append([check(t + " " * k) for k in range(20) for t in texts][-4:])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4


def test_syntax_truncation_in_a_real_file():
    at = REAL_PY.index("\n\ndef dedent(") + 1  # on the blank line before it
    prefix, suffix = REAL_PY[:at], REAL_PY[at:]
    raw = 'def tag(name: str) -> str:\n    """A tag."""\n    return f"<{name}>" + (\n'
    check = syntax_checker("python")
    result = postprocess_trace(raw, prefix, suffix, PostprocessOptions(language="python"), check)
    assert result.text == 'def tag(name: str) -> str:\n    """A tag."""\n    return f"<{name}>"'
    assert "syntax" in result.applied
    assert check(prefix + result.text + suffix) <= check(prefix + suffix)
    without = postprocess_trace(raw, prefix, suffix, PostprocessOptions(language="python"))
    assert without.text.endswith("+ (")  # the pure rules alone keep the broken tail
