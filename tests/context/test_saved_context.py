"""A restarted engine with repository context on puts the context committed before the restart in
front of a used document's prompt again while its files are unchanged, so the KV state saved on
disk restores the whole prompt; a changed context file is never served stale (only the prompt
before its block is restored). Real sc2-tiny; "a restart" is a second engine on the same state
directory (the tests' own, tests/conftest.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sc2lsp.config import Settings
from sc2lsp.core.prompt import SourceFile
from sc2lsp.engine import Cursor, Engine
from sc2lsp.saved_contexts import SavedContexts, workspace_root

ROOT = Path(__file__).resolve().parents[2]
TINY = os.environ.get("SC2LSP_E2E_MODEL", str(ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"))
GEOMETRY = (ROOT / "examples" / "demo" / "geometry.py").read_text()
AT = GEOMETRY.index("        return ") + len("        return ")
UTIL = "def norm(v):\n    return sum(x * x for x in v) ** 0.5\n"
MORE = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"


class Context:
    """What the workspace gathers: the files' blocks as they are on disk now (or a fixed list)."""

    def __init__(self, ws: Path, names: list[str]):
        self.ws, self.names, self.calls = ws, names, 0

    def __call__(self, cur, plan, count, complete=False):
        self.calls += 1
        return [SourceFile(n, (self.ws / n).read_text()) for n in self.names]


def workspace(tmp_path: Path) -> tuple[Path, str]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "geometry.py").write_text(GEOMETRY)
    (ws / "util.py").write_text(UTIL)
    (ws / "more.py").write_text(MORE)
    return ws, (ws / "geometry.py").as_uri()


def engine(ctx, **kw) -> Engine:
    s = Settings(model=TINY, threads=1, max_prompt_ms=600_000, max_predict_ms=600_000, max_tokens=8, **kw)
    e = Engine(s, context_fn=ctx)
    e.start().result(timeout=60)
    return e


def ask(e: Engine, uri: str) -> dict:
    s = e.complete(Cursor(uri, GEOMETRY, AT, "python", "geometry.py", "demo")).future.result(timeout=120)
    assert s.source == "model", s
    return dict(s.timings, prompt=e.last_prompt, text=s.text)


def session_one(ws: Path, uri: str, names: list[str]) -> str:
    """Ask at AT, rest there (a warm-up commits the complete context; its state goes to disk), end."""
    e = engine(Context(ws, names))
    try:
        ask(e, uri)
        assert e.warm(Cursor(uri, GEOMETRY, AT, "python", "geometry.py", "demo"))
        assert e.wait_idle(timeout=120)
        e.worker.backend.disk.flush()
        e.context.saved.flush()
        return e.last_prompt
    finally:
        e.close()


def cold(ws: Path, uri: str, names: list[str]) -> dict:
    e = engine(Context(ws, names), state_disk_mb=0, state_cache_mb=0)
    try:
        return ask(e, uri)
    finally:
        e.close()


def test_a_restart_restores_the_prompt_with_its_committed_context(tmp_path):
    ws, uri = workspace(tmp_path)
    session_one(ws, uri, ["util.py", "more.py"])
    ctx = Context(ws, ["more.py"])  # the restarted server would gather other context
    e = engine(ctx)
    try:
        t = ask(e, uri)
    finally:
        e.close()
    assert ctx.calls == 0
    assert "<file_sep>util.py\n" in t["prompt"] and "<file_sep>more.py\n" in t["prompt"]
    assert t["state_loads"] == 1 and t["prompt_tokens_evaluated"] <= 3, t
    assert t["prompt_tokens_reused"] >= t["prompt_tokens"] - 3 > 200, t
    ref = cold(ws, uri, ["util.py", "more.py"])
    assert ref["prompt"] == t["prompt"] and ref["text"] == t["text"]


def test_a_changed_context_file_is_gathered_again_and_only_the_prefix_before_it_restored(tmp_path):
    ws, uri = workspace(tmp_path)
    before = session_one(ws, uri, ["more.py", "util.py"])
    (ws / "util.py").write_text(UTIL + "\n\ndef dot(a, b):\n    return sum(x * y for x, y in zip(a, b))\n")
    e = engine(Context(ws, ["util.py", "more.py"]))
    try:
        t = ask(e, uri)
    finally:
        e.close()
    assert "def dot(a, b)" in t["prompt"]  # util.py as it is now, never the saved block
    assert t["prompt"].index("more.py") < t["prompt"].index("util.py")  # the unchanged block kept its place
    shared = before[: before.index("<file_sep>util.py")]
    assert t["prompt"].startswith(shared)
    assert t["state_loads"] == 1 and 10 < t["prompt_tokens_reused"] < t["prompt_tokens"] - 50, t
    ref = cold(ws, uri, ["more.py", "util.py"])
    assert ref["prompt"] == t["prompt"] and ref["text"] == t["text"]


def test_the_document_itself_changed_or_damaged_records_are_not_used(tmp_path):
    ws, uri = workspace(tmp_path)
    store = SavedContexts(tmp_path / "states")
    files = (SourceFile("geometry.py", "outline"), SourceFile("util.py", UTIL))
    store.record(uri, GEOMETRY, 7, "geometry.py", "sfx", files, 100, True)
    store.flush()
    assert workspace_root(uri, "geometry.py") == ws.resolve()
    fresh = SavedContexts(tmp_path / "states")
    assert fresh.find(uri, GEOMETRY, "geometry.py", "sfx").valid == 2 and fresh.place(uri, GEOMETRY) == 7
    assert fresh.place(uri, GEOMETRY + "x") is None
    assert fresh.find(uri, GEOMETRY, "geometry.py", "another suffix") is None
    assert SavedContexts(tmp_path / "states").find(uri, GEOMETRY + "x", "geometry.py", "sfx").valid == 0
    (ws / "util.py").write_text(UTIL.replace("0.5", "0.6"))  # same size, another content
    assert SavedContexts(tmp_path / "states").find(uri, GEOMETRY, "geometry.py", "sfx").valid == 1
    (f,) = (tmp_path / "states" / "contexts").glob("*.json")
    f.write_text(f.read_text()[:-20])
    assert SavedContexts(tmp_path / "states").find(uri, GEOMETRY, "geometry.py", "sfx") is None
    assert not f.exists()


def test_the_first_warm_up_after_a_restart_goes_where_the_document_was_left(tmp_path):
    ws, uri = workspace(tmp_path)
    session_one(ws, uri, ["util.py"])
    e = engine(Context(ws, ["more.py"]))
    try:
        assert e.warm(Cursor(uri, GEOMETRY, 0, "python", "geometry.py", "demo"))  # didOpen: no cursor known
        assert e.wait_idle(timeout=120)
        t = ask(e, uri)  # the state was restored by the warm-up: nothing to load or evaluate now
        assert t["state_loads"] == 0 and t["prompt_tokens_evaluated"] <= 3, t
        assert "<file_sep>util.py\n" in t["prompt"]
        # a document changed since then is warmed where the editor says
        other = engine(Context(ws, ["more.py"]))
        try:
            assert other.warm(Cursor(uri, GEOMETRY + "\n", 0, "python", "geometry.py", "demo"))
            assert other.wait_idle(timeout=120)
            assert other.worker.backend.cached_tokens not in (0, t["prompt_tokens"])  # the prompt at 0
        finally:
            other.close()
    finally:
        e.close()


def test_after_a_restart_the_last_used_document_is_live_again_after_other_documents_open(tmp_path):
    """An editor reopens several documents at once: the one used last before the restart is warmed
    again after the others' didOpen warm-ups (its saved state restored into the live cache), so its
    first request restores nothing; once a request was made the live cache follows the requests."""
    ws, uri = workspace(tmp_path)
    session_one(ws, uri, ["util.py"])
    e = engine(Context(ws, ["more.py"]))
    other, third = (ws / "util.py").as_uri(), (ws / "more.py").as_uri()
    end = time.monotonic() + 30
    while e.model_state != "ready" and time.monotonic() < end:  # set by the load's done callback
        time.sleep(0.01)
    try:
        assert e.warm(Cursor(uri, GEOMETRY, 0, "python", "geometry.py", "demo"))  # didOpen, used before
        assert e.warm(Cursor(other, UTIL, 0, "python", "util.py", "demo"))  # didOpen, never seen
        assert e.wait_idle(timeout=120)
        t = ask(e, uri)
        assert t["state_loads"] == 0 and t["prompt_tokens_evaluated"] <= 3, t
        assert "<file_sep>util.py\n" in t["prompt"]
        assert e.warm(Cursor(third, MORE, 0, "python", "more.py", "demo"))  # opened after a request
        assert e.wait_idle(timeout=120)
        assert e.worker.backend.cached_tokens != t["prompt_tokens"]  # its prompt stays live
        assert t["text"] == cold(ws, uri, ["util.py"])["text"]
    finally:
        e.close()


def test_documents_reopened_while_the_model_loads_end_with_the_last_used_one_live(tmp_path):
    """An editor's didOpens usually come while the model loads (only the newest warm-up waits for
    it): the document used last before the restart still ends up live."""
    ws, uri = workspace(tmp_path)
    session_one(ws, uri, ["util.py"])
    s = Settings(model=TINY, threads=1, max_prompt_ms=600_000, max_predict_ms=600_000, max_tokens=8)
    e = Engine(s, context_fn=Context(ws, ["more.py"]))
    try:
        loading = e.start()
        e.warm(Cursor(uri, GEOMETRY, 0, "python", "geometry.py", "demo"))
        e.warm(Cursor((ws / "util.py").as_uri(), UTIL, 0, "python", "util.py", "demo"))
        loading.result(timeout=60)
        end = time.monotonic() + 30
        while e.totals["warmups"] < 1 and time.monotonic() < end:  # the pending warm-up, after the load
            time.sleep(0.01)
        assert e.wait_idle(timeout=120)
        t = ask(e, uri)
        assert t["state_loads"] == 0 and t["prompt_tokens_evaluated"] <= 3, t
        assert "<file_sep>util.py\n" in t["prompt"]
    finally:
        e.close()
