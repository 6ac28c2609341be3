"""Lazy symbols: an index that parses a file only when something needs it answers like one that
parsed everything up front."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import sc2lsp.context.index as index_module
from sc2lsp.context.index import LOOKUP_KINDS, RepoIndex
from sc2lsp.context.languages import language_for
from sc2lsp.context.symbols import candidate_names, extract

STDLIB = Path(sysconfig.get_paths()["stdlib"])
PY_FILES = ["queue.py", "heapq.py", "threading.py", "json/decoder.py", "json/encoder.py", "argparse.py",
            "dataclasses.py", "typing.py", "enum.py", "functools.py", "collections/__init__.py", "ast.py", "pathlib.py"]
OTHER = {
    "src/util.h": "#define MAX 3\ntypedef struct point { int x; } point_t;\nint add(int a, int b);\n"
                  "enum color { RED, GREEN };\nstatic inline int twice(int v) { return 2 * v; }\n",
    "src/box.hpp": "class Box {\n public:\n  int open();\n};\nusing Id = int;\nint Box::open() { return 1; }\n",
    "web/app.js": "export function render(x) { return x; }\nconst helper = (y) => y;\nclass View { show() {} }\n",
    "odd.py": "x = 1; y: int = 2\ntype Alias = list[int]\nclass A: pass\nasync def go():\n    def inner(): pass\n",
}


def corpus() -> dict[str, str]:
    files = {f"lib/{name}": (STDLIB / name).read_text(encoding="utf-8") for name in PY_FILES}
    files.update(OTHER)
    return files


def build(files: dict[str, str], lazy: bool) -> RepoIndex:
    idx = RepoIndex()
    for path, text in files.items():
        idx.apply_change(path, text, lazy=lazy)
    return idx


def key(defs):
    return sorted((d.path, d.start_line, d.name, d.kind, d.signature, d.container) for d in defs)


def test_candidate_names_are_a_superset_of_the_definitions():
    for path, text in corpus().items():
        language = language_for(path)
        exact = {d.name for d in extract(path, text, language).definitions if d.kind in LOOKUP_KINDS}
        missing = exact - candidate_names(text, language)
        assert not missing, (path, sorted(missing))


def test_lazy_index_finds_what_an_eager_one_finds():
    files = corpus()
    eager, lazy = build(files, lazy=False), build(files, lazy=True)
    assert len(eager) >= len(files) - 2 and eager.paths() == lazy.paths()
    names = {d.name for p in eager.paths() for d in eager.get(p).definitions}
    assert len(names) > 500
    for name in sorted(names):
        assert key(lazy.definitions_named(name)) == key(eager.definitions_named(name)), name
    for p in eager.paths():  # and a lazily parsed file has the symbols of an eager parse
        assert lazy.get(p).symbols == eager.get(p).symbols


def test_a_lazy_file_is_parsed_once_and_only_when_needed(parses):
    idx = RepoIndex()
    idx.apply_change("pkg/util.py", "def helper(x):\n    return x\n", lazy=True)
    idx.apply_change("pkg/other.py", "def unrelated():\n    pass\n", lazy=True)
    assert parses == [] and not idx.get("pkg/util.py").parsed
    assert [d.name for d in idx.definitions_named("helper")] == ["helper"]
    assert parses == ["pkg/util.py"]  # the other file cannot define "helper": not parsed
    idx.definitions_named("helper")
    idx.get("pkg/util.py").symbols
    assert parses == ["pkg/util.py"]
    idx.apply_change("pkg/util.py", "def helper2(x):\n    return x\n", lazy=True)  # a change of a parsed file:
    # its changed statements re-derived (context/incremental.py), no whole parse
    assert idx.definitions_named("helper") == () and [d.name for d in idx.definitions_named("helper2")] == ["helper2"]
    assert parses == ["pkg/util.py"]
    idx.apply_change("pkg/other.py", "def unrelated2():\n    pass\n", lazy=True)  # of an unparsed one: parsed on use
    assert parses == ["pkg/util.py"] and [d.name for d in idx.definitions_named("unrelated2")] == ["unrelated2"]
    assert parses == ["pkg/util.py", "pkg/other.py"]


def test_a_parsed_file_is_filed_under_its_definitions_only(monkeypatch):
    """A name the cheap pass missed is found once the file is parsed; a name it wrongly
    suggested no longer leads to the file."""
    monkeypatch.setattr(index_module, "candidate_names", lambda text, language: frozenset({"decoy"}))
    idx = RepoIndex()
    idx.apply_change("m.py", "def real():\n    pass\n", lazy=True)
    assert idx.definitions_named("real") == ()  # not parsed yet, and not a candidate
    idx.get("m.py").symbols  # a request parses it
    assert [d.name for d in idx.definitions_named("real")] == ["real"]
    assert "decoy" not in idx._by_name
    assert idx.remove("m.py") and idx._by_name == {}


def test_remove_and_replace_of_a_lazy_file_leave_no_trace():
    idx = RepoIndex()
    idx.apply_change("a.py", "def one():\n    pass\nX = 1\n", lazy=True)
    idx.apply_change("a.py", "def two():\n    pass\n", lazy=True)
    assert idx.definitions_named("one") == () and idx.definitions_named("X") == ()
    idx.remove("a.py")
    assert idx._by_name == {} and idx.definitions_named("two") == ()
