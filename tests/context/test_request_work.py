"""What a request does not do again (issue 14 item 3, context assembly p95): the same-folder name
table (C/C++, Go, Java), the similar-chunk postings and the renderings of indexed definitions are
built once, not per request, and give exactly what the per-request work gave; the files a
document's names find without an import are loaded by ``prepare``, not by its first request."""

from __future__ import annotations

import random
import sysconfig
import threading
from pathlib import Path

from sc2lsp.context import file_providers, kept, names
from sc2lsp.context.file_providers import _chunks, similar_provider
from sc2lsp.context.gather import assemble, complete_options, make_request, prepare
from sc2lsp.context.index import RepoIndex
from sc2lsp.context.names import _defs_in, _Resolver, folder_names
from sc2lsp.context.providers import definitions_provider

N_HEADERS = 12


def header(i: int) -> str:
    return (f"#pragma once\n\nstruct Item{i} {{\n  int size{i};\n}};\n\n"
            f"int helper_{i}(int a, int b);\n\n#define LIMIT_{i} {i}\n")


def c_folder(lazy: bool = False) -> tuple[RepoIndex, str]:
    idx = RepoIndex()
    for i in range(N_HEADERS):
        idx.apply_change(f"util/h{i}.h", header(i), lazy=lazy)
    main = "".join(f"int use_{i}(void) {{\n  return helper_{i}(LIMIT_{i}, 2);\n}}\n\n" for i in range(N_HEADERS))
    idx.apply_change("util/main.c", main, lazy=lazy)
    return idx, main


def request_at(idx: RepoIndex, path: str, text: str, needle: str, budget: int = 400):
    req = make_request(idx, path, text, text.index(needle))
    req.budget, req.deadline = budget, float("inf")
    return req


def test_same_folder_lookup_builds_the_folder_table_once_and_equals_asking_every_file():
    idx, main = c_folder()
    built = names.folder_tables_built
    prepare(idx, "util/main.c")
    assert names.folder_tables_built == built + 1  # prepare built it
    for i in (3, 7, 11):
        req = request_at(idx, "util/main.c", main, f"helper_{i}(")
        res = _Resolver(req)
        for name in [f"helper_{i}", f"LIMIT_{i}", f"Item{i}", f"size{i}", "nothing_here"]:
            same = tuple(p for p in idx.files_in_dir("util") if p != "util/main.c")
            for top in (True, False):  # (C and Go ask for top-level names; Java for any)
                assert res.in_folder(name, top) == _defs_in(req, same, name, top)
        found, how = res.resolve(f"helper_{i}", None)
        assert [d.path for d in found] == [f"util/h{i}.h"] and how.endswith("in the same package")
    assert names.folder_tables_built == built + 1  # three requests, no new table

    # a file of the folder changes: the table is built again and sees the new name
    idx.apply_change("util/h5.h", header(5) + "\nint brand_new(void);\n")
    req = request_at(idx, "util/main.c", main, "helper_5(")
    found, _ = _Resolver(req).resolve("brand_new", None)
    assert [d.path for d in found] == ["util/h5.h"]
    assert names.folder_tables_built == built + 2
    idx.remove("util/h5.h")
    found, _ = _Resolver(request_at(idx, "util/main.c", main, "helper_5(")).resolve("helper_5", None)
    assert found == [] and names.folder_tables_built == built + 3
    assert folder_names(idx, "util") is folder_names(idx, "util")


def stdlib_files(n: int) -> dict[str, str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out = {}
    for name in ("queue", "threading", "heapq", "json/decoder", "textwrap", "argparse", "csv", "shlex"):
        p = root / f"{name}.py"
        if p.is_file():
            out[f"lib/{name}.py"] = p.read_text(encoding="utf-8")
        if len(out) >= n:
            break
    return out


def reference_similar(req) -> list[tuple[float, str, int, int]]:
    """The scores as the provider computed them before the postings: one set intersection per window."""
    o, scored = req.options, []
    before = req.text[: req.offset].split("\n")[-o.query_lines:]
    import re
    query = frozenset(re.findall(r"[A-Za-z_$][\w$]*", "\n".join(before)))
    for p in (req.path,) + tuple(q for q in req.index.recent_files() if q != req.path):
        entry = req.entry if p == req.path else req.index.get(p)
        near = req.cursor_line if p == req.path else None
        for start, end, toks in _chunks(entry, o.chunk_lines, o.chunk_stride, near):
            if req.in_window(p, start, end):
                continue
            inter = len(query & toks)
            if inter and inter / (len(query) + len(toks) - inter) >= o.min_similarity:
                scored.append((-(inter / (len(query) + len(toks) - inter)), p, start, end))
    return sorted(scored)


def test_similar_chunks_from_postings_equal_the_window_by_window_scores_and_are_built_once():
    files = stdlib_files(6)
    assert len(files) >= 4
    idx = RepoIndex()
    for path, text in files.items():
        idx.apply_change(path, text)
        idx.touch(path)
    rng = random.Random(5)
    built = file_providers.postings_built
    paths = sorted(files)
    for i in range(80):
        path = rng.choice(paths)
        text = files[path]
        offset = rng.randrange(len(text))
        if i % 4 == 0:
            offset = text.index("\n", offset // 2) + 1 if "\n" in text[offset // 2:] else offset
        if rng.random() < 0.7:
            prepare(idx, path)  # the current file's postings too (then used near the cursor)
        req = make_request(idx, path, text, offset, window=(max(0, offset - 2000), offset + 500))
        req.deadline = float("inf")
        got = similar_provider(req)
        want = reference_similar(req)[: req.options.max_chunks * 3]
        assert [(c.path, c.snippets[0].start, c.snippets[0].end) for c in got] == [(p, s, e) for _, p, s, e in want]
        assert [c.reason for c in got] == [f"similar lines (Jaccard {-neg:.2f})" for neg, *_ in want]
    # one ChunkPostings per file, however many requests used it
    assert file_providers.postings_built - built <= len(files)


CONFIG = '''class Config:
    """Holds settings."""

    def __init__(self, port: int):
        self.port = port

    def url(self, host: str) -> str:
        """The URL for host."""
        return f"http://{host}:{self.port}"


def load_config(path: str) -> Config:
    """Read a config file."""
    return Config(int(open(path).read()))
'''
MAIN = '''from . import config
from .config import Config, load_config


def main(path):
    cfg = load_config(path)
    print(cfg.url("localhost"))
    config.load_config(path)
    return Config(1)
'''


def test_renderings_of_indexed_definitions_are_made_once_and_follow_the_file():
    idx = RepoIndex()
    idx.apply_change("app/config.py", CONFIG)
    idx.apply_change("app/main.py", MAIN)
    prepare(idx, "app/main.py")
    made = kept.renders_made
    first = definitions_provider(request_at(idx, "app/main.py", MAIN, "print("))
    again = definitions_provider(request_at(idx, "app/main.py", MAIN, "return Config"))
    assert kept.renders_made == made  # prepare rendered what the file imports; requests reuse it
    texts = [s.text for c in first + again for s in c.snippets]
    assert any("def load_config(path: str) -> Config:" in t for t in texts)
    assert any("def url(self, host: str) -> str:" in t for t in texts)

    # the defining file changes: its definitions are rendered from the new text
    changed = CONFIG.replace("def load_config(path: str) -> Config:", "def load_config(path: str, strict: bool) -> Config:")
    idx.apply_change("app/config.py", changed)
    after = definitions_provider(request_at(idx, "app/main.py", MAIN, "print("))
    texts = "\n".join(s.text for c in after for s in c.snippets)
    assert "strict: bool" in texts and kept.renders_made > made


def test_prepare_loads_what_the_names_find_so_the_first_request_parses_nothing():
    idx, main = c_folder(lazy=True)
    # a name defined in one header of another folder: found by name (C needs no import for it)
    idx.apply_change("core/api.h", "#pragma once\n\nint core_status(int code);\n", lazy=True)
    main2 = main + "int status(void) {\n  return core_status(1);\n}\n"
    idx.apply_change("util/main.c", main2, lazy=True)
    parsed: list[str] = []
    idx.on_parsed = lambda e: parsed.append(e.path)
    prepare(idx, "util/main.c")
    assert "core/api.h" in parsed and "util/h4.h" in parsed
    assert idx.get("core/api.h")._lines is not None  # its lines too (what a rendering reads)
    assert idx.get("core/api.h")._by_name is not None  # and its table by name (what a lookup reads)
    parsed.clear()
    for needle in ("core_status(1)", "helper_4(", "helper_9("):
        res = assemble(idx, "util/main.c", main2, main2.index(needle), 400, options=complete_options())
        assert any(b.path in ("core/api.h", "util/h4.h", "util/h9.h") for b in res.blocks)
    assert parsed == []  # nothing parsed (or decoded) on the requests


def test_members_rendered_once_across_requests():
    idx = RepoIndex()
    idx.apply_change("app/config.py", CONFIG)
    idx.apply_change("app/main.py", MAIN)
    prepare(idx, "app/main.py")
    results = []
    made = kept.renders_made
    for _ in range(3):
        results.append([(c.path, c.reason, c.tiers()) for c in definitions_provider(
            request_at(idx, "app/main.py", MAIN, "config.load_config"))])
    assert results[0] == results[1] == results[2]
    assert kept.renders_made == made


def test_threads_share_the_folder_table_safely():
    idx, main = c_folder()
    errors = []

    def work(i):
        try:
            req = request_at(idx, "util/main.c", main, f"helper_{i % N_HEADERS}(")
            found, _ = _Resolver(req).resolve(f"helper_{i % N_HEADERS}", None)
            assert [d.path for d in found] == [f"util/h{i % N_HEADERS}.h"]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_similar_windows_of_every_file_are_scored_as_window_by_window():
    # every window alike: which windows count is only the range near the cursor (the current
    # file), every window (another file, from its postings) and the prompt's window
    text = "\n".join(f"alpha = beta(gamma, delta_{i % 3})" for i in range(2000))
    idx = RepoIndex()
    idx.apply_change("big.py", text)
    idx.apply_change("other.py", text)
    idx.touch("other.py")
    for line in (0, 5, 299, 300, 301, 306, 1000, 1702, 1999):
        offset = sum(len(x) + 1 for x in text.split("\n")[:line])
        for window in (None, (max(0, offset - 800), offset + 300)):
            req = make_request(idx, "big.py", text, offset, window=window)
            req.deadline = float("inf")
            got: list = []
            for p in ("big.py", "other.py"):
                file_providers._scores(req, p, req.entry if p == "big.py" else idx.get(p), _query(req), got)
            assert sorted(got) == reference_similar(req), (line, window)


def _query(req):
    import re
    before = req.text[: req.offset].split("\n")[-req.options.query_lines:]
    return frozenset(re.findall(r"[A-Za-z_$][\w$]*", "\n".join(before)))


def test_renderings_depend_on_the_counter_without_keeping_it_alive():
    import gc
    import weakref

    from sc2lsp.core.budget import approx_tokens, memo_counter

    idx = RepoIndex()
    idx.apply_change("app/config.py", CONFIG)
    idx.apply_change("app/main.py", MAIN)
    count = memo_counter(approx_tokens)
    req = request_at(idx, "app/main.py", MAIN, "print(")
    req.count = count
    definitions_provider(req)
    made = kept.renders_made
    definitions_provider(req)
    assert kept.renders_made == made  # same counter: kept
    other = request_at(idx, "app/main.py", MAIN, "print(")
    other.count = memo_counter(approx_tokens)
    definitions_provider(other)
    assert kept.renders_made > made  # another counter (another tokenizer): rendered for it
    ref = weakref.ref(count)
    del count, req
    gc.collect()
    assert ref() is None  # the kept renderings do not hold the counter


def test_prepare_loads_the_package_files_a_go_file_names():
    idx = RepoIndex()
    idx.apply_change("geo/area.go", "package geo\n\nfunc Area(r float64) float64 { return r * r }\n", lazy=True)
    idx.apply_change("geo/unused.go", "package geo\n\nfunc Unused() {}\n", lazy=True)
    filler = "".join(f"func f{i}() int {{ return {i} }}\n" for i in range(30))  # (prepare's own gathering is at the top)
    shape = f'package geo\n\nimport "fmt"\n\n{filler}\nfunc Describe() float64 {{\n\tfmt.Println("x")\n\treturn Area(2)\n}}\n'
    idx.apply_change("geo/shape.go", shape, lazy=True)
    parsed: list[str] = []
    idx.on_parsed = lambda e: parsed.append(e.path)
    prepare(idx, "geo/shape.go")
    assert "geo/area.go" in parsed and idx.get("geo/area.go")._lines is not None
    assert idx.get("geo/unused.go")._lines is None  # parsed for the folder's table, not loaded for rendering
    parsed.clear()
    res = assemble(idx, "geo/shape.go", shape, shape.index("Area(2)"), 400, options=complete_options())
    assert any(b.path == "geo/area.go" for b in res.blocks) and parsed == []


def test_the_lines_before_the_cursor_equal_a_split_of_the_prefix():
    rng = random.Random(11)
    for text in ["", "\n", "a", "a\nb", "\n\nx\n", "one\ntwo\nthree\n\nfive"] + [
            "".join(rng.choice("ab\n ") for _ in range(rng.randrange(60))) for _ in range(300)]:
        for offset in range(len(text) + 1):
            for n in (0, 1, 2, 3, 12):
                assert file_providers._lines_before(text, offset, n) == "\n".join(text[:offset].split("\n")[-n:])
