"""The first request after a document is opened and prepared (issue 14 item 2): what the
definitions provider needs is ready (no tokenizing, no scan of the file per name), and a
definitions provider that is late still gives the candidates it ranked first."""

from __future__ import annotations

import random
import re
import threading

from sc2lsp.context import definitions
from sc2lsp.context.definitions import USE_WINDOW, _member_uses, _uses, uses_of
from sc2lsp.context.gather import ContextOptions, NO_TIME_LIMIT, assemble, make_request, prepare
from sc2lsp.context.index import RepoIndex
from sc2lsp.context.providers import PROVIDER_FUNCTIONS, definitions_provider
from sc2lsp.core.budget import memo_counter

CONFIG = '''"""Config."""


class Config:
    """Holds settings."""

    def __init__(self, port: int):
        self.port = port

    def url(self, host: str) -> str:
        """The URL for host."""
        return f"http://{host}:{self.port}"


def load_config(path: str) -> Config:
    """Read a config file."""
    with open(path) as f:
        return Config(int(f.read()))


def save_config(cfg: Config, path: str) -> None:
    """Write a config file."""
    with open(path, "w") as f:
        f.write(str(cfg.port))
'''
MAIN = '''from . import config
from .config import load_config


def local_helper(x: int) -> int:
    """A helper of this file."""
    return x + 1


def main(path):
    cfg = load_config(path)
    n = local_helper(cfg.port)
    config.save_config(cfg, path)
    return n
'''


def make_index(files: dict[str, str]) -> RepoIndex:
    idx = RepoIndex()
    for path, text in files.items():
        idx.apply_change(path, text)
    return idx


def naive_uses(text: str, name: str, lo: int, hi: int) -> int:
    return sum(1 for m in re.finditer(r"(?<![\w$])" + re.escape(name) + r"(?![\w$])", text)
               if lo <= m.start() and m.end() <= hi)


def test_uses_near_the_cursor_match_a_scan_of_the_text_prepared_or_not():
    rng = random.Random(3)
    words = ["alpha", "beta", "mod", "obj", "alphabet", "x1alpha", "if"]
    lines = []
    for i in range(3000):  # > 2 * USE_WINDOW characters: the request indexes only its window
        a, b = rng.choice(words), rng.choice(words)
        lines.append(f"    {a} = mod.{b}(obj.{a}) + {b}_{i}.mod.alpha  # alpha")
    text = "\n".join(lines)
    assert len(text) > 2 * USE_WINDOW + 20_000
    idx = make_index({"big.py": text})
    for off in (0, len(text) // 2, len(text) - 5):
        req = make_request(idx, "big.py", text, off)
        lo, hi = max(0, off - USE_WINDOW), min(len(text), off + USE_WINDOW)
        got = {w: _uses(req, w, 10**9) for w in words}
        members = _member_uses(req, "mod", 10**9)
        assert got == {w: naive_uses(text, w, lo, hi) for w in words}
        want = {}
        for m in re.finditer(r"(?<![\w$.])mod\.([A-Za-z_$]\w*)", text):
            if lo <= m.start() and m.start() + 4 <= hi and m.group(1) != "if":
                want[(m.group(1), "mod")] = want.get((m.group(1), "mod"), 0) + 1
        assert members == want
        assert sum(_member_uses(req, "mod", 32).values()) == 32  # the nearest 32 only
    uses_of(text)  # prepared: the whole text indexed, the same answers
    for off in (len(text) // 3, len(text)):
        req = make_request(idx, "big.py", text, off)
        lo, hi = max(0, off - USE_WINDOW), min(len(text), off + USE_WINDOW)
        assert {w: _uses(req, w, 10**9) for w in words} == {w: naive_uses(text, w, lo, hi) for w in words}


def test_a_prepared_document_is_ranked_without_tokenizing_or_scanning(monkeypatch):
    """After ``prepare`` (didOpen), the definitions provider's first request counts no new text
    (imports, module members and the file's own definitions were counted) and builds no uses
    index: both happened when the document was opened."""
    idx = make_index({"pkg/config.py": CONFIG, "pkg/main.py": MAIN})
    counted: list[str] = []

    def raw(text: str) -> int:
        counted.append(text)
        return max(1, len(text) // 4)

    count = memo_counter(raw)
    idx.open("pkg/main.py")
    prepare(idx, "pkg/main.py", count=count)
    counted.clear()
    built = []
    monkeypatch.setattr(definitions, "Uses", lambda *a: built.append(a))
    for needle in ("n = local_helper", "config.save_config", "return n"):
        req = make_request(idx, "pkg/main.py", MAIN, MAIN.index(needle), count=count, window=(0, 0))
        req.budget, req.deadline = 400, NO_TIME_LIMIT
        found = {(c.path, c.snippets[-1].start) for c in definitions_provider(req)}
        assert definitions._prepared(req) is not None  # the uses were indexed by ``prepare``
        assert ("pkg/config.py", CONFIG.count("\n", 0, CONFIG.index("def save_config"))) in found
        assert ("pkg/main.py", MAIN.count("\n", 0, MAIN.index("def local_helper"))) in found
    assert counted == [] and built == []


def test_a_late_definitions_provider_gives_the_candidates_it_ranked_first():
    """The provider is stopped (its token counter blocks) once it has ranked a candidate: the
    request does not wait for it, and what it ranked first (the definition named on the lines
    at the cursor) is in the context all the same; the skip says it was partial."""
    idx = make_index({"pkg/config.py": CONFIG, "pkg/main.py": MAIN})
    release = threading.Event()
    reqs = []

    def stalled(req):
        count = req.count
        reqs.append(req)

        def blocking(text):
            if req.snapshot is not None and req.snapshot():
                release.wait(5)
            return count(text)

        req.count = blocking
        return definitions_provider(req)

    opts = ContextOptions(time_budget_ms={"definitions": 300, "outline": NO_TIME_LIMIT, "edits": NO_TIME_LIMIT,
                                          "similar": NO_TIME_LIMIT})
    try:
        res = assemble(idx, "pkg/main.py", MAIN, MAIN.index("n = local_helper"), 600, options=opts,
                       window=(MAIN.index("def main"), len(MAIN)),
                       providers={**PROVIDER_FUNCTIONS, "definitions": stalled})
    finally:
        release.set()
    assert res.skipped == {"definitions": "late, partial"}
    defs = [b for b in res.blocks if b.provider == "definitions"]
    assert defs and "def local_helper(x: int) -> int:" in "".join(b.code for b in defs)  # the cursor's line


def test_a_provider_without_a_snapshot_is_skipped_whole():
    import time

    idx = make_index({"pkg/config.py": CONFIG, "pkg/main.py": MAIN})

    def slow(req):
        time.sleep(0.5)
        return []

    opts = ContextOptions(time_budget_ms={"definitions": NO_TIME_LIMIT, "outline": NO_TIME_LIMIT,
                                          "edits": NO_TIME_LIMIT, "similar": 20})
    res = assemble(idx, "pkg/main.py", MAIN, MAIN.index("n = local_helper"), 600, options=opts,
                   providers={**PROVIDER_FUNCTIONS, "similar": slow})
    assert res.skipped == {"similar": "late"}


def test_the_first_request_after_did_open_uses_the_preparation(tmp_path, monkeypatch):
    """The server's path: a workspace scanned, a document opened (``did_open``: prepared in the
    background), then its first request with the request-path time budgets: the definition the
    lines around the cursor use, from another file, is in the blocks, nothing was skipped, and
    the ranking worked from the uses indexed at didOpen."""
    from sc2lsp.commands.context import context_budget
    from sc2lsp.workspace.service import WorkspaceContext

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text(CONFIG)
    filler = "".join(f"\n\ndef step_{i}(x):\n    return config.load_config(x) or {i}\n" for i in range(300))
    main = MAIN + filler
    (pkg / "main.py").write_text(main)
    ws = WorkspaceContext(tmp_path, watch=False, workers=1).start()
    try:
        assert ws.ready.wait(30)
        ws.did_open(str(pkg / "main.py"), main, "python")
        assert ws.wait_prepared(30)
        offset = main.index("    config.save_config")
        plan, _ = context_budget(main[:offset], main[offset:])
        seen = []
        real = definitions._prepared
        monkeypatch.setattr(definitions, "_prepared", lambda req: seen.append(real(req)) or seen[-1])
        blocks = ws.blocks(str(pkg / "main.py"), main, offset, plan)
        assert any(b.path == "pkg/config.py" and "def save_config(cfg: Config, path: str)" in b.code
                   for b in blocks), blocks
        assert seen and all(u is not None for u in seen)
    finally:
        ws.stop()


def test_a_typescript_name_defined_as_a_value_and_a_type_shows_both():
    """``export const Status = {...} as const`` with ``export type Status = ...`` (the enum idiom):
    one name, a value and a type in one file; the type is not lost as an "overload" of the value."""
    status = ('export const Status = {\n    Ok: "OK",\n    Failed: "FAILED",\n} as const;\n'
              "export type Status = (typeof Status)[keyof typeof Status];\n"
              "export function overloaded(a: string): string;\nexport function overloaded(a: number): number;\n"
              "export function overloaded(a: any): any {\n    return a;\n}\n")
    user = ('import { Status, overloaded } from "./status";\n\n'
            "export type Reply = {\n    status: Status;\n    body: string;\n};\n\n"
            "export function f(): Reply {\n    overloaded(1);\n    return { status: Status.Ok, body: '' };\n}\n")
    idx = make_index({"src/status.ts": status, "src/user.ts": user})
    req = make_request(idx, "src/user.ts", user, user.index("    body: string"), window=(0, 0))
    req.budget, req.deadline = 600, NO_TIME_LIMIT
    starts = [(c.path, c.snippets[-1].start) for c in definitions_provider(req)]
    assert ("src/status.ts", 0) in starts and ("src/status.ts", 4) in starts  # the const and the type
    assert sum(p == "src/status.ts" and 5 <= s <= 9 for p, s in starts) == 1  # one signature of the overloads
