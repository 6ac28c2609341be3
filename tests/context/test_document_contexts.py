"""``DocumentContexts`` on its own (no Engine, no model): the engine's committed per-document
context is an object given only what it uses, and keeps a document's context while its prompt
only grows."""

from __future__ import annotations

import threading
from dataclasses import replace

from sc2lsp.backends.worker import ModelWorker
from sc2lsp.config import Settings
from sc2lsp.core.budget import approx_tokens, plan_budget
from sc2lsp.core.prompt import SourceFile
from sc2lsp.engine import Cursor
from sc2lsp.engine_context import DocumentContexts

A = SourceFile("a.py", "def a():\n    return 1\n" * 4)
B = SourceFile("b.py", "def b():\n    return 2\n" * 4)
TEXT = "import a\n\nx = \n\nprint(x)\n"


def contexts(answer, settings=Settings(state_disk_mb=0)) -> tuple[DocumentContexts, ModelWorker, list]:
    calls: list[bool] = []

    def context_fn(cur, plan, count, complete=False):
        assert count is approx_tokens
        calls.append(complete)
        return list(answer)

    def unused(*a, **kw):
        raise AssertionError("no warm-up runs in this test")

    worker = ModelWorker()
    dc = DocumentContexts(settings, context_fn, worker, lock=threading.RLock(), counter=lambda: approx_tokens,
                          preview=unused, prompt=unused, busy=lambda: False, parse=unused)
    return dc, worker, calls


def request(dc: DocumentContexts, text: str, offset: int):
    cur = Cursor("file:///w/m.py", text, offset, "python", "m.py", "w")
    plan = plan_budget(text[:offset], text[offset:], 2000)
    return cur, plan, plan.cut(text[:offset], text[offset:])[1]


def test_committed_context_is_kept_while_the_prompt_grows_and_trimmed_when_the_budget_shrinks():
    answer = [A, B]
    dc, worker, calls = contexts(answer)
    try:
        at = TEXT.index("= ") + 2
        cur, plan, sfx = request(dc, TEXT, at)
        assert dc.for_request(cur, plan, sfx) == (A, B) and calls == [False]
        assert dc.committed(cur.uri).files == (A, B) and not dc.committed(cur.uri).complete
        answer[:] = [B]  # the workspace changed: a keystroke that extends the prompt keeps its context
        cur, plan, sfx = request(dc, TEXT[:at] + "4" + TEXT[at:], at + 1)
        assert dc.for_request(cur, plan, sfx) == (A, B) and calls == [False]
        one = approx_tokens(f"{A.path}\n{A.code}") + 2
        assert dc.for_request(cur, replace(plan, context_tokens=one), sfx) == (A,)  # the front stays
        cur, plan, sfx = request(dc, TEXT, len(TEXT))  # the cursor went elsewhere: gathered anew
        assert dc.for_request(cur, plan, sfx) == (B,) and calls == [False, False]
    finally:
        dc.close()
        worker.close()


def test_a_warm_up_asked_for_while_loading_waits_for_the_model():
    dc, worker, _ = contexts([A])
    try:
        cur = Cursor("file:///w/m.py", TEXT, 3, "python", "m.py", "w")
        assert not dc.warm(cur, "loading") and not dc.preparing
        assert dc.take_pending() == cur and dc.take_pending() is None
        assert not dc.warm(cur, "failed") and dc.take_pending() is None
    finally:
        dc.close()
        worker.close()
