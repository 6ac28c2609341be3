"""A changed Python file's symbols re-derived from the old ones (``context/incremental.py``) equal a
full parse, and only the changed statements are parsed."""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import pytest

from sc2lsp.context.incremental import Rederive
from sc2lsp.context.index import RepoIndex
from sc2lsp.context.symbols import extract

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["queue.py", "heapq.py", "threading.py", "json/decoder.py", "argparse.py", "dataclasses.py", "typing.py",
         "enum.py", "functools.py", "ast.py", "pathlib.py", "textwrap.py"]


def edits(text: str, rng: random.Random):
    """Edits an editor or a save makes: a function appended, a line changed, inserted or deleted
    anywhere (inside bodies, strings, decorators...), a block deleted, an import added."""
    lines = text.split("\n")
    n = len(lines)
    yield text + "\n\ndef appended_fn(a, b=1):\n    \"\"\"Docs.\"\"\"\n    return a + b\n"
    for _ in range(12):
        i = rng.randrange(n)
        kind = rng.choice(["append_to_line", "insert_def", "insert_line", "delete", "delete_block", "quote",
                           "import", "indent", "dedent_body"])
        new = list(lines)
        if kind == "append_to_line":
            new[i] += rng.choice([" + 1", "  # note", "(", ")", ":", "x"])
        elif kind == "insert_def":
            new[i:i] = ["def inserted_%d(x):" % i, "    return x", ""]
        elif kind == "insert_line":
            new[i:i] = [rng.choice(["    pass", "x = 3", "", "@decorator", "class C%d:" % i, "else:", '"""'])]
        elif kind == "delete":
            del new[i]
        elif kind == "delete_block":
            del new[i:i + rng.randint(2, 40)]
        elif kind == "quote":
            new[i] += '"""'
        elif kind == "import":
            new[i:i] = ["import collections.abc as cabc", "from os import path as p%d" % i]
        elif kind == "indent":
            new[i] = "    " + new[i]
        else:
            new[i] = new[i].lstrip()
        yield "\n".join(new)


def test_rederived_symbols_equal_a_full_parse_on_random_edits():
    rng = random.Random(7)
    checked = rederived = 0
    small = 0
    for name in FILES:
        path = f"lib/{name}"
        text = (STDLIB / name).read_text(encoding="utf-8")
        old = extract(path, text, "python")
        for new_text in edits(text, rng):
            r = Rederive(path, "python", new_text, new_text.split("\n"), old, text.split("\n"))
            got = r()
            want = extract(path, new_text, "python")
            checked += 1
            if got is not None:
                rederived += 1
                assert got == want, (name, r.p, r.old_end, r.new_end)
                small += r.fragment_lines < len(new_text.split("\n")) / 4
    assert checked == 13 * len(FILES)
    assert rederived >= checked // 3, rederived  # most edits need no full parse ...
    assert small >= rederived // 2, small  # ... and parse a small part of the file


def test_a_change_parses_only_the_changed_statements(parses, monkeypatch):
    import sc2lsp.context.incremental as incremental

    fragments: list[int] = []

    def counting(path, text, language):
        fragments.append(text.count("\n"))
        return extract(path, text, language)

    monkeypatch.setattr(incremental, "extract", counting)
    text = (STDLIB / "argparse.py").read_text(encoding="utf-8")
    idx = RepoIndex()
    idx.apply_change("argparse.py", text)
    assert parses == ["argparse.py"]
    new = text + "\n\ndef bench_saved():\n    return 1\n"
    idx.apply_change("argparse.py", new, lazy=True)  # a save seen by the watcher
    (d,) = idx.definitions_named("bench_saved")
    assert d.start_line == new.count("\n") - 2 and d.kind == "function"
    body = new.replace("        return self._registries[registry_name].get(value, default)",
                       "        found = self._registries[registry_name]\n        return found.get(value, default)", 1)
    assert body != new
    idx.apply_change("argparse.py", body)  # an edit inside a method (eager: the same)
    assert parses == ["argparse.py"] and len(fragments) == 2 and max(fragments) < 400  # the enclosing class, of 2,600 lines
    assert idx.get("argparse.py").symbols == extract("argparse.py", body, "python")
    seen = []
    idx.on_parsed = seen.append  # the symbol cache hears of re-derived symbols too
    idx.apply_change("argparse.py", new)
    assert [e.text for e in seen] == [new]


@pytest.mark.parametrize("old_state", ["parsed", "compact", "unparsed"])
def test_rederive_needs_old_symbols_or_their_compact_form(old_state):
    from sc2lsp.workspace.symbol_cache import cache_key, encode, unpack

    text = (STDLIB / "queue.py").read_text(encoding="utf-8")
    idx = RepoIndex()
    idx.apply_change("queue.py", text, lazy=old_state != "parsed")
    if old_state == "compact":
        entry = idx.get("queue.py")
        key = cache_key("queue.py", "python", entry.digest)
        assert entry.set_compact(*unpack(encode(key, extract("queue.py", text, "python")), key, "queue.py"))
    new = text.replace("def qsize(self):", "def qsize(self):\n        '''Size.'''", 1)
    idx.apply_change("queue.py", new, lazy=True)
    assert idx.get("queue.py").parsed == (old_state != "unparsed")  # an unparsed old text: parsed on use
    assert idx.get("queue.py").symbols == extract("queue.py", new, "python")


def test_an_import_change_falls_back_to_a_full_parse():
    text = (STDLIB / "queue.py").read_text(encoding="utf-8")
    old = extract("queue.py", text, "python")
    new = text.replace("\nclass Queue:", "\nfrom os import path as changed_path\n\nclass Queue:", 1)
    assert new != text and "changed_path" in str(extract("queue.py", new, "python").imports)
    assert Rederive("queue.py", "python", new, new.split("\n"), old, text.split("\n"))() is None
