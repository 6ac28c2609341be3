"""The engine's repository-context protocol on the real embedded model (issue 14): context is
committed per document and changes only where the prompt is evaluated anew, never on a keystroke
that extends the prompt; a warm-up gathers it completely and commits it once it is evaluated."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sc2lsp.config import Settings
from sc2lsp.core.prompt import SourceFile
from sc2lsp.engine import Cursor, Engine

ROOT = Path(__file__).resolve().parents[2]
TINY = os.environ.get("SC2LSP_E2E_MODEL", str(ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"))
GEOMETRY = (ROOT / "examples" / "demo" / "geometry.py").read_text()
URI = "file:///w/geometry.py"
UTIL = SourceFile("util.py", "def norm(v):\n    return sum(x * x for x in v) ** 0.5\n")
MORE = SourceFile("more.py", "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n")


class ScriptedContext:
    """A context function whose answer the test changes; records how it was called."""

    def __init__(self):
        self.answer: list[SourceFile] | None = None  # None: "still indexing"
        self.calls: list[bool] = []  # complete flag of each call
        self.gate = threading.Event()  # a complete gathering (a warm-up's) waits for it
        self.gate.set()

    def __call__(self, cur, plan, count, complete=False):
        self.calls.append(complete)
        if complete:
            assert self.gate.wait(60)
        return self.answer


def engine(ctx: ScriptedContext, **kw) -> Engine:
    s = Settings(model=TINY, threads=1, max_prompt_ms=600_000, max_predict_ms=600_000, max_tokens=8, **kw)
    e = Engine(s, context_fn=ctx)
    e.start().result(timeout=60)
    return e


def typed(text: str, at: int, s: str) -> tuple[str, int]:
    return text[:at] + s + text[at:], at + len(s)


def ask(e: Engine, text: str, offset: int) -> dict:
    s = e.complete(Cursor(URI, text, offset, "python", "geometry.py", "demo")).future.result(timeout=120)
    assert s.source == "model", s
    return dict(s.timings, prompt=e.last_prompt)


def test_context_arriving_while_typing_waits_for_a_warm_up():
    ctx = ScriptedContext()
    e = engine(ctx)
    try:
        text = GEOMETRY
        at = text.index("        return ") + len("        return ")
        first = ask(e, text, at)  # not indexed yet: no context
        assert "util.py" not in first["prompt"] and ctx.calls == [False]
        ctx.answer = [UTIL]  # the index is ready now
        for ch in "ma":  # keystrokes that extend the prompt keep the committed (empty) context
            text, at = typed(text, at, ch)
            t = ask(e, text, at)
            assert "util.py" not in t["prompt"] and t["prompt_tokens_evaluated"] <= 2, t
        text, at = typed(text, at, "\n        x = ")  # Enter: a new line, the same suffix
        t = ask(e, text, at)
        assert "util.py" not in t["prompt"] and t["prompt_tokens_evaluated"] <= 8, t
        assert ctx.calls == [False]

        # the user pauses: a warm-up gathers the context completely and evaluates it
        assert e.warm(Cursor(URI, text, at, "python", "geometry.py", "demo"))
        assert e.wait_idle(timeout=120)
        assert ctx.calls == [False, True]
        text, at = typed(text, at, "n")
        t = ask(e, text, at)
        assert "<file_sep>util.py\n" in t["prompt"] and t["prompt_tokens_evaluated"] <= 2, t
    finally:
        e.close()


def test_a_warm_up_dropped_by_a_keystroke_commits_nothing():
    ctx = ScriptedContext()
    ctx.answer = [UTIL]
    e = engine(ctx)
    try:
        text = GEOMETRY
        at = text.index("        return ") + len("        return ")
        ask(e, text, at)
        ctx.answer = [UTIL, MORE]
        ctx.gate.clear()
        assert e.warm(Cursor(URI, text, at, "python", "geometry.py", "demo"))
        text, at = typed(text, at, "m")  # a keystroke while the warm-up gathers its context
        ticket = e.complete(Cursor(URI, text, at, "python", "geometry.py", "demo"))
        ctx.gate.set()
        assert ticket.future.result(timeout=120).source == "model"
        assert e.wait_idle(timeout=120)
        assert ctx.calls == [False, True]
        text, at = typed(text, at, "a")
        t = ask(e, text, at)
        assert "more.py" not in t["prompt"] and t["prompt_tokens_evaluated"] <= 2, t
        assert e.status()["totals"]["warmups"] == 1
    finally:
        e.close()


def test_the_cursor_going_elsewhere_gathers_context_again():
    ctx = ScriptedContext()
    ctx.answer = [UTIL]
    e = engine(ctx)
    try:
        at = GEOMETRY.index("        return ") + len("        return ")
        ask(e, GEOMETRY, at)
        ctx.answer = [MORE]
        t = ask(e, GEOMETRY, GEOMETRY.index("def ") + 4)  # elsewhere: the suffix differs
        assert "<file_sep>more.py\n" in t["prompt"] and "util.py" not in t["prompt"]
        assert ctx.calls == [False, False]
    finally:
        e.close()
