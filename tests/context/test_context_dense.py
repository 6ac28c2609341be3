"""Dense renderings and the ranking signals that decide which definitions fit a small budget:
signatures first (one line where they fit), the words around the cursor, members of objects."""

from __future__ import annotations

from sc2lsp.context import render
from sc2lsp.context.gather import ContextOptions, gather_context
from sc2lsp.context.index import RepoIndex, build_entry
from sc2lsp.context.names import subwords

#: Every provider but the definitions one left out, no time budget to miss on a loaded machine.
DEFS_ONLY = ContextOptions(priority=("definitions",), time_budget_ms={"definitions": float("inf")})


def make_index(files: dict[str, str]) -> RepoIndex:
    idx = RepoIndex()
    for path, text in files.items():
        assert idx.apply_change(path, text)
    return idx


def _def(entry, name):
    return next(d for d in entry.definitions if d.name == name)


def test_brief_forms():
    py = build_entry("m.py", 'def fetch(\n    url: str,\n    *,\n    timeout: float = 1.0,\n) -> bytes:\n'
                             '    """Fetch it."""\n    return b""\n\n\nLIMIT: int = compute_the_limit(1, 2, 3)\n'
                             'NAME = "x"\n\n\nclass Box(Base):\n    """A box."""\n\n    def open(self):\n        pass\n')
    assert render.brief(py, _def(py, "fetch")).text == "def fetch(url: str, *, timeout: float = 1.0) -> bytes: ..."
    assert render.brief(py, _def(py, "LIMIT")).text == "LIMIT: int = ..."  # the value left out
    assert render.brief(py, _def(py, "NAME")).text == 'NAME = "x"'  # a short value kept
    assert render.brief(py, _def(py, "Box")).text == "class Box(Base): ..."
    ts = build_entry("m.ts", "export function map<T, R>(\n  project: (value: T) => R,\n): OperatorFunction<T, R> {\n"
                             "  return null;\n}\n")
    b = render.brief(ts, _def(ts, "map"))
    assert b.text == "export function map<T, R>(project: (value: T) => R): OperatorFunction<T, R> { /* ... */ }"
    assert (b.start, b.end) == (0, 4) and render.marked(b)


def test_signatures_first_then_docs_then_bodies():
    # 8 imported functions with long docs and bodies: at 150 tokens every signature fits (their
    # docs would not), and with room to spare the first ones get their docs and bodies back
    lib = "".join(f'def helper_{i}(alpha, beta):\n    """{"Word " * 12}{i}."""\n    return alpha + beta * {i}\n\n\n'
                  for i in range(8))
    names = ", ".join(f"helper_{i}" for i in range(8))
    main = f"from lib import {names}\n\n\ndef run():\n    "
    idx = make_index({"lib.py": lib, "main.py": main})
    code = "".join(b.code for b in gather_context(idx, "main.py", main, len(main), 150, options=DEFS_ONLY))
    assert all(f"def helper_{i}(alpha, beta)" in code for i in range(8)), code
    assert "def helper_7(alpha, beta): ..." in code and '"""Word' in code  # the first ones got their docs
    assert "# ..." not in code  # a snippet that shows its own elision needs no elision line
    code = "".join(b.code for b in gather_context(idx, "main.py", main, len(main), 2000, options=DEFS_ONLY))
    assert "return alpha + beta * 7" in code


def test_names_whose_words_are_around_the_cursor_come_first():
    assert subwords("_create_progress_bar") == {"create", "progress", "bar"}
    assert subwords("isOfflineMode") == {"offline", "mode"}
    # 30 imported helpers, each used once far from the cursor: the comment above the cursor says
    # which one the next line needs
    lib = "".join(f"def helper_{i}(alpha, beta, gamma):\n    return alpha\n\n\n" for i in range(30))
    lib += "def create_progress_bar(total, unit):\n    return total\n"
    names = ", ".join(f"helper_{i}" for i in range(30))
    uses = "".join(f"    helper_{i}(1, 2, 3)\n" for i in range(30))
    main = (f"from lib import {names}, create_progress_bar\n\n\ndef first():\n{uses}    create_progress_bar(1, 'b')\n"
            + "\n" * 40 + "def later():\n    # one progress bar for the bytes\n    bar = ")
    idx = make_index({"lib.py": lib, "main.py": main})
    window = (len(main) - 60, len(main))
    code = "".join(b.code for b in gather_context(idx, "main.py", main, len(main), 80, window=window, options=DEFS_ONLY))
    assert "def create_progress_bar(total, unit)" in code, code


def test_members_of_an_object_literal_the_file_reaches_into():
    provider = ("export const timers = {\n  setTimer(fn: () => void, ms: number) {\n    return 1;\n  },\n"
                "  clearTimer(handle: number) {\n    return;\n  },\n};\n")
    main = "import { timers } from './timers';\n\nconst id = timers.setTimer(() => {}, 5);\n"
    idx = make_index({"src/timers.ts": provider, "src/main.ts": main})
    code = "".join(b.code for b in gather_context(idx, "src/main.ts", main, len(main), 200, options=DEFS_ONLY))
    assert "clearTimer(handle: number)" in code, code
