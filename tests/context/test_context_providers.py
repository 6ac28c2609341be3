"""Context providers on small multi-file repositories in every language (real grammars)."""

from __future__ import annotations

import time

import pytest

from sc2lsp.context.index import RepoIndex
from sc2lsp.context.gather import ContextOptions, assemble, complete_options, gather_context
from sc2lsp.core.budget import approx_tokens
from sc2lsp.core.prompt import infill_prompt

CONFIG = '''"""Config."""
DEFAULT_PORT = 8080


class Config:
    """Holds settings."""

    def __init__(self, port: int = DEFAULT_PORT):
        self.port = port

    def url(self, host: str) -> str:
        """The URL for host."""
        return f"http://{host}:{self.port}"


def load_config(path: str) -> Config:
    """Read a config file."""
    with open(path) as f:
        return Config(int(f.read()))
'''
MAIN = '''from .config import load_config
from numpy import array
import os


def main():
    cfg = load_config(os.environ["CFG"])
    data = array([1, 2])
    print(cfg.url("localhost"))
'''


def make_index(files: dict[str, str]) -> RepoIndex:
    idx = RepoIndex()
    for path, text in files.items():
        assert idx.apply_change(path, text) or path.endswith(".txt")
    return idx


def at(text: str, needle: str) -> int:
    return text.index(needle)


def shown(blocks, path: str, line: int) -> bool:
    return any(b.path == path and any(a <= line <= z for a, z in b.lines) for b in blocks)


def test_python_definition_through_import():
    idx = make_index({"pkg/config.py": CONFIG, "pkg/main.py": MAIN, "other/array.py": "def array(x):\n    return x\n"})
    blocks = gather_context(idx, "pkg/main.py", MAIN, at(MAIN, "print"), 600)
    defs = [b for b in blocks if b.provider == "definitions"]
    assert len(defs) == 1 and defs[0].path == "pkg/config.py"
    assert "def load_config(path: str) -> Config:" in defs[0].code
    assert "def url(self, host: str) -> str:" in defs[0].code  # cfg.url, by name
    assert "load_config imported from .config" in defs[0].reason
    # numpy's array is outside the repository: the repo's own array() is not offered instead
    assert not shown(blocks, "other/array.py", 0)
    # the blocks go into the prompt in StarCoder2's repository format
    prompt = infill_prompt(MAIN[:100], MAIN[100:], path="pkg/main.py", context=[b.source_file() for b in blocks])
    assert prompt.startswith("<file_sep>pkg/config.py\n")


def test_import_beats_a_same_named_definition_elsewhere():
    util = "def helper(x):\n    return x\n"
    main = "from a.util import helper\n\nhelper(1)\n"
    idx = make_index({"a/util.py": util, "b/util.py": util.replace("x", "y"), "b/main.py": main})
    blocks = gather_context(idx, "b/main.py", main, len(main), 400)
    assert shown(blocks, "a/util.py", 0) and not shown(blocks, "b/util.py", 0)


def test_ambiguous_names_are_not_guessed():
    files = {f"m{i}.py": "def run():\n    pass\n" for i in range(5)}
    files["main.py"] = "x.run()\n"
    idx = make_index(files)
    assert gather_context(idx, "main.py", files["main.py"], 0, 400) == []


# language -> files, current file, needle at the cursor, (path, line) of the definition it needs
LANG_CASES = {
    "javascript": ({"src/geo.js": "/** Area of a circle. */\nexport function area(r) {\n  return 3.14 * r * r;\n}\n",
                    "src/app.js": "import { area } from './geo.js';\nconsole.log(area(2));\n"},
                   "src/app.js", "area(2)", ("src/geo.js", 1)),
    "typescript": ({"src/shape.ts": "export interface Shape {\n  area(): number;\n}\n",
                    "src/app.ts": "import { Shape } from './shape';\nlet s: Shape;\n"},
                   "src/app.ts", "Shape;", ("src/shape.ts", 0)),
    "go": ({"geo/point.go": "package geo\n\n// Dist is a distance.\nfunc Dist(a, b int) int {\n\treturn a - b\n}\n",
            "cmd/main.go": 'package main\n\nimport "example.com/proj/geo"\n\nfunc main() {\n\tgeo.Dist(1, 2)\n}\n'},
           "cmd/main.go", "geo.Dist", ("geo/point.go", 3)),
    "rust": ({"src/geo/shapes.rs": "pub struct Circle {\n    pub r: f64,\n}\n",
              "src/main.rs": "use crate::geo::shapes::Circle;\nfn main() {\n    let c = Circle { r: 1.0 };\n}\n"},
             "src/main.rs", "Circle {", ("src/geo/shapes.rs", 0)),
    "java": ({"src/com/acme/util/Strings.java": "package com.acme.util;\npublic class Strings {\n  public static String pad(String s) { return s; }\n}\n",
              "src/com/acme/App.java": "package com.acme;\nimport com.acme.util.Strings;\nclass App {\n  void f() { Strings.pad(\"x\"); }\n}\n"},
             "src/com/acme/App.java", "Strings.pad", ("src/com/acme/util/Strings.java", 1)),
    "c": ({"include/vec.h": "typedef struct vec { float x, y; } vec_t;\nfloat vec_len(vec_t v);\n",
           "src/main.c": '#include "vec.h"\nint main(void) {\n  vec_t v;\n  return (int)vec_len(v);\n}\n'},
          "src/main.c", "vec_len(v)", ("include/vec.h", 1)),
    "cpp": ({"src/counter.hpp": "class Counter {\n public:\n  int next();\n};\n",
             "src/main.cpp": '#include "counter.hpp"\nint main() {\n  Counter c;\n  return c.next();\n}\n'},
            "src/main.cpp", "c.next", ("src/counter.hpp", 2)),
}


@pytest.mark.parametrize("language", sorted(LANG_CASES))
def test_cross_file_definition_in_every_language(language):
    files, current, needle, (path, line) = LANG_CASES[language]
    idx = make_index(files)
    text = files[current]
    blocks = gather_context(idx, current, text, at(text, needle), 500)
    assert shown(blocks, path, line), [(b.path, b.lines, b.reason) for b in blocks]
    assert all(b.path != current for b in blocks)  # the whole current file is in the prompt


def _long_module(n: int) -> str:
    return "".join(f"def f{i}(x):\n    '''Doc {i}.'''\n    y = x + {i}\n    return y * 2\n\n\n" for i in range(n))


def test_window_outline_and_no_repeats():
    text = _long_module(40)
    cursor = at(text, "def f30")
    window = (at(text, "def f25"), at(text, "def f35"))
    # what is chosen, not how fast: no provider time budgets (a loaded machine skipped one)
    res = assemble(make_index({"m.py": text}), "m.py", text, cursor, 400, window=window, options=complete_options())
    outline = [b for b in res.blocks if b.provider == "outline"]
    assert outline and outline[0].path == "m.py"
    w0, w1 = text.count("\n", 0, window[0]), text.count("\n", 0, window[1])
    for b in res.blocks:
        for a, z in b.lines:
            assert z < w0 or a > w1, (b.provider, b.lines)  # nothing inside the window
    # nearest first under a budget: f24 (just above the window) is in, f0 is not
    assert "def f24(x):" in outline[0].code and "    ..." in outline[0].code
    # without a window (whole file in the prompt) there is nothing to add from this file
    assert gather_context(make_index({"m.py": text}), "m.py", text, cursor, 400) == []


def test_budget_is_respected_and_long_definitions_are_elided():
    body = "".join(f"    v{i} = {i}\n" for i in range(200))
    lib = f"def big(a, b):\n    '''Does a lot.'''\n{body}    return a\n"
    main = "from lib import big\nbig(1, 2)\n"
    idx = make_index({"lib.py": lib, "main.py": main})
    for budget in (40, 100, 1000):
        blocks = gather_context(idx, "main.py", main, len(main), budget)
        spent = sum(b.tokens + approx_tokens(b.path + "\n") + 1 for b in blocks)
        assert spent <= budget
    (b,) = gather_context(idx, "main.py", main, len(main), 1000)
    assert b.code == 'def big(a, b):\n    """Does a lot."""\n    ...\n'
    assert gather_context(idx, "main.py", main, len(main), 0) == []


def test_deterministic_whatever_the_order_of_changes():
    files = {"pkg/config.py": CONFIG, "pkg/main.py": MAIN, "pkg/extra.py": "def url(x):\n    return x\n"}
    a = make_index(files)
    b = make_index(dict(reversed(list(files.items()))))
    args = ("pkg/main.py", MAIN, at(MAIN, "print"), 600)
    first = gather_context(a, *args)
    assert first == gather_context(a, *args) == gather_context(b, *args)


def test_similar_chunks_and_recent_edits():
    shared = "    total = 0\n    for item in items:\n        total += item.price * item.quantity\n"
    other = "def subtotal(items):\n" + shared + "    return total\n" + "\n# filler\n" * 20
    cur = "def invoice(items):\n" + shared
    idx = make_index({"shop/cart.py": other, "shop/invoice.py": cur, "shop/notes.txt": "unrelated words\n"})
    idx.apply_change("shop/notes.txt", "unrelated words\nchanged line\n")
    idx.open("shop/cart.py")
    res = assemble(idx, "shop/invoice.py", cur, len(cur), 800)
    by = {b.provider: b for b in res.blocks}
    assert by["similar"].path == "shop/cart.py" and "item.price * item.quantity" in by["similar"].code
    assert by["edits"].path == "shop/notes.txt" and "changed line" in by["edits"].code
    assert [b.provider for b in res.blocks] == [p for p in ContextOptions().render_order if p in by]


def test_a_slow_provider_is_skipped_not_waited_for():
    from sc2lsp.context.providers import PROVIDER_FUNCTIONS

    def slow(req):
        time.sleep(1.0)
        return []

    idx = make_index({"pkg/config.py": CONFIG, "pkg/main.py": MAIN})
    funcs = {**PROVIDER_FUNCTIONS, "similar": slow}
    opts = ContextOptions(time_budget_ms={"definitions": 500, "outline": 500, "edits": 500, "similar": 50})
    t0 = time.perf_counter()
    res = assemble(idx, "pkg/main.py", MAIN, at(MAIN, "print"), 600, options=opts, providers=funcs)
    assert time.perf_counter() - t0 < 0.5
    assert res.skipped == {"similar": "late"}
    assert any(b.provider == "definitions" for b in res.blocks)


def test_a_failing_provider_costs_only_its_blocks():
    from sc2lsp.context.providers import PROVIDER_FUNCTIONS

    def broken(req):
        raise RuntimeError("bug")

    idx = make_index({"pkg/config.py": CONFIG, "pkg/main.py": MAIN})
    res = assemble(idx, "pkg/main.py", MAIN, at(MAIN, "print"), 600, providers={**PROVIDER_FUNCTIONS, "outline": broken})
    assert res.skipped["outline"].startswith("error") and res.blocks


def test_unindexed_and_stale_current_file():
    idx = make_index({"pkg/config.py": CONFIG})
    # not in the index: parsed on the fly, not stored
    assert gather_context(idx, "pkg/main.py", MAIN, at(MAIN, "print"), 600)
    assert "pkg/main.py" not in idx
    # stale entry: the request's text decides the cursor line
    idx.apply_change("pkg/main.py", MAIN)
    edited = MAIN + "\n\ndef later():\n    return load_config('x')\n"
    assert shown(gather_context(idx, "pkg/main.py", edited, len(edited), 600), "pkg/config.py", 15)


def test_commonjs_require_and_default_export():
    lib = "class Compilation {\n  addModule(m) {}\n}\n\nmodule.exports = Compilation;\n"
    util = "const helper = (x) => x;\nexport default helper;\n"
    app = 'const Compilation = require("./Compilation");\nimport h from "./util.js";\nnew Compilation();\nh(1);\n'
    idx = make_index({"lib/Compilation.js": lib, "lib/util.js": util, "lib/app.js": app})
    blocks = gather_context(idx, "lib/app.js", app, len(app), 500)
    assert shown(blocks, "lib/Compilation.js", 0) and shown(blocks, "lib/util.js", 0)


def test_huge_current_file_gets_no_context_quickly():
    idx = make_index({"pkg/config.py": CONFIG})
    huge = "from pkg.config import load_config\n" + "var a=load_config(1);" * 250_000  # 5 MB, minified
    t0 = time.perf_counter()
    res = assemble(idx, "app.js", huge, len(huge) // 2, 600)
    assert res.blocks == [] and time.perf_counter() - t0 < 0.5
    assert "app.js" not in idx
    # the index refuses it too, and keeps no older version of it
    idx.apply_change("app.js", "var a = 1;\n")
    assert not idx.apply_change("app.js", huge) and "app.js" not in idx


def test_members_of_a_module_used_near_the_cursor():
    util = "def parse(s):\n    return s\n\n\ndef render(doc, width=80):\n    return doc\n\n\nclass Hidden:\n    pass\n"
    main = "from . import util\n\ndoc = util.parse('x')\n"
    idx = make_index({"pkg/util.py": util, "pkg/main.py": main})
    (b,) = gather_context(idx, "pkg/main.py", main, len(main), 400)
    assert "def parse(s):" in b.code and "def render(doc, width=80):" in b.code and "class Hidden:" in b.code
    assert "member of util" in b.reason


def test_members_of_an_imported_object_and_class():
    output = ("class Output:\n    def result(self, msg, **fields):\n        pass\n\n"
              "    def hint(self, msg):\n        pass\n\n\nout = Output()\n")
    main = "from .output import out\n\nout.result('done')\n"  # hint() is never named here
    idx = make_index({"cli/output.py": output, "cli/main.py": main})
    (b,) = gather_context(idx, "cli/main.py", main, len(main), 400)
    assert "def hint(self, msg):" in b.code and "class Output:" in b.code


@pytest.mark.parametrize("files,current,needle,where", [
    # Go: a name of the same package (folder) needs no import
    ({"geo/area.go": "package geo\n\nfunc Area(r float64) float64 { return r * r }\n",
      "geo/shape.go": "package geo\n\nfunc Describe() float64 {\n\treturn Area(2)\n}\n"},
     "geo/shape.go", "Area(2)", ("geo/area.go", 2)),
    # Rust: `mod util;` then util::helper()
    ({"src/util.rs": "pub fn helper(x: u32) -> u32 { x }\n",
      "src/main.rs": "mod util;\nfn main() {\n    util::helper(1);\n}\n"},
     "src/main.rs", "util::helper", ("src/util.rs", 0)),
    # C: a call resolved through the header's implementation file next to it
    ({"lib/list.h": "struct list;\nint list_len(struct list *l);\n",
      "lib/list.c": '#include "list.h"\nint list_len(struct list *l) { return 0; }\n',
      "app/main.c": '#include "../lib/list.h"\nint main(void) { return list_len(0); }\n'},
     "app/main.c", "list_len(0)", ("lib/list.h", 1)),
])
def test_package_and_module_resolution(files, current, needle, where):
    idx = make_index(files)
    text = files[current]
    blocks = gather_context(idx, current, text, at(text, needle), 500)
    assert shown(blocks, *where), [(b.path, b.lines, b.reason) for b in blocks]


def test_qualifier_parsing():
    from sc2lsp.context.providers import _qualifier

    line = "x = cfg.url(a) + ns::f() + p->next + 3.5 + y"
    assert _qualifier(line, line.index("url")) == "cfg"
    assert _qualifier(line, line.index("f()")) == "ns"
    assert _qualifier(line, line.index("next")) == "p"
    assert _qualifier(line, line.index("y")) is None and _qualifier(line, 0) is None
    assert _qualifier("a . b", 4) == "a"


def test_other_imports_and_qualified_members_ranked_by_their_uses_in_the_file():
    # 12 imported helpers of ~20 tokens each: only some fit a 120-token budget. The ones the file
    # uses most (``busy`` and ``tools.heavy``, far from the cursor) must come before the rest.
    helpers = "".join(f"def helper_{i}(alpha, beta, gamma, delta):\n    return alpha\n\n\n" for i in range(12))
    helpers += "def busy(alpha, beta, gamma, delta):\n    return alpha\n"
    tools = "".join(f"def tool_{i}(x, y, z):\n    return x\n\n\n" for i in range(20)) + "def heavy(x, y, z):\n    return x\n"
    names = ", ".join(f"helper_{i}" for i in range(12))
    uses = "".join(f"    helper_{i}(1, 2, 3, 4)\n" for i in range(12))
    main = (f"from lib.helpers import {names}, busy\nfrom lib import tools\n\n\ndef first():\n{uses}"
            + "    busy(1, 2, 3, 4)\n" * 5 + "    tools.heavy(1, 2, 3)\n" * 4
            + "\n" * 60 + "def later():\n    x = 1\n    ")
    idx = make_index({"lib/helpers.py": helpers, "lib/tools.py": tools, "app/main.py": main})
    opts = ContextOptions(priority=("definitions",))
    blocks = gather_context(idx, "app/main.py", main, len(main), 120, window=(len(main) - 40, len(main)), options=opts)
    code = "".join(b.code for b in blocks)
    assert "def busy(alpha, beta, gamma, delta):" in code
    assert "def heavy(x, y, z):" in code and "def tool_0(" not in code
    assert "def helper_11(" not in code  # used once each: after the busy ones, and out of budget
