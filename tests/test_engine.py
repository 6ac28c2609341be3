"""The engine and its model worker on the real embedded model: warm-up, time caps, newest wins,
typing along, saved KV states."""

from __future__ import annotations

import os
from pathlib import Path


from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings
from sc2lsp.backends.worker import Job, ModelWorker
from sc2lsp.config import Settings
from sc2lsp.core.prompt import infill_prompt
from sc2lsp.engine import Cursor, Engine

from backend_double import DoubleBackend

ROOT = Path(__file__).resolve().parents[1]
TINY = os.environ.get("SC2LSP_E2E_MODEL", str(ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"))
SOURCE = (ROOT / "sc2lsp" / "engine.py").read_text()
GEOMETRY = (ROOT / "examples" / "demo" / "geometry.py").read_text()


def make_engine(**kw) -> Engine:
    kw.setdefault("max_prompt_ms", 600_000)  # a busy test machine must not hit the time caps
    kw.setdefault("max_predict_ms", 600_000)
    e = Engine(Settings(model=TINY, threads=1, **kw))
    e.start().result(timeout=60)
    return e


def at(text: str, needle: str, uri: str = "file:///w/a.py") -> Cursor:
    return Cursor(uri, text, text.index(needle) + len(needle), "python", "a.py")


def test_warm_up_leaves_one_token_to_evaluate():
    e = make_engine()
    try:
        cur = at(SOURCE, "def status(self)")
        assert e.warm(cur)
        assert e.wait_idle(timeout=300)
        s = e.complete(cur).future.result(timeout=60)
        assert s.timings["prompt_tokens"] > 500
        assert s.timings["prompt_tokens_evaluated"] <= 1
    finally:
        e.close()


def test_prompt_time_cap_answers_empty_and_keeps_evaluating():
    e = make_engine(max_prompt_ms=1)
    try:
        cur = at(SOURCE, "def status(self)")
        s = e.complete(cur).future.result(timeout=60)
        assert s.text == "" and s.reason == "prompt_time"
        assert e.worker.wait_idle(timeout=300)  # the rest of the prompt is evaluated in the background
        e.configure(Settings(model=TINY, threads=1, max_prompt_ms=600_000))  # lift the cap (no reload: same model settings)
        s = e.complete(cur).future.result(timeout=60)
        assert s.reason != "prompt_time" and s.timings["prompt_tokens_evaluated"] <= 1
    finally:
        e.close()


def test_newest_request_wins():
    e = make_engine()
    try:
        spots = ["def complete(self", "def start(self", "def status(self", "def close(self", "def configure(self"]
        tickets = [e.complete(at(SOURCE, s)) for s in spots]
        results = [t.future.result(timeout=60) for t in tickets]
        assert [r.reason for r in results[:-1]] == ["cancelled"] * 4
        assert results[-1].reason != "cancelled" and results[-1].timings["generated_tokens"] > 0
    finally:
        e.close()


def test_typing_along_and_shared_requests():
    e = make_engine()
    try:
        for i, needle in enumerate(["        return math.sqrt(", "        return math.", "        return "]):
            text = GEOMETRY.replace("        return \n", needle + "\n", 1)
            cur = at(text, needle, uri=f"file:///w/a{i}.py")
            first = e.complete(cur)
            twin = e.complete(cur)  # the same request again (inline + classic completion): one generation
            s, s2 = first.future.result(timeout=60), twin.future.result(timeout=60)
            assert s2.text == s.text and s2.source == "shared"
            if len(s.text) >= 2:
                break
        assert len(s.text) >= 2, s
        calls = e.totals["model_requests"]
        typed = text[: cur.offset] + s.text[0] + text[cur.offset:]
        s3 = e.complete(Cursor(cur.uri, typed, cur.offset + 1, "python", "a.py")).future.result(timeout=5)
        assert s3.source == "typed_along" and s3.text == s.text[1:]
        assert e.totals["model_requests"] == calls
    finally:
        e.close()


def test_disabled_language_and_bad_offsets():
    e = make_engine(languages={"markdown": False})
    try:
        assert e.complete(Cursor("u", "# x", 3, "markdown")).future.result().reason == "disabled"
        assert e.complete(Cursor("u", "x", 5, "python")).future.result().reason == "bad_position"
    finally:
        e.close()


def test_saved_state_gives_the_same_text_as_a_cold_model():
    b = LlamaCppBackend(TINY, LlamaSettings(n_threads=1))
    a_prompt = infill_prompt(SOURCE[:2500], SOURCE[2500:3000], path="engine.py")
    b_prompt = infill_prompt(GEOMETRY[:300], GEOMETRY[300:], path="geometry.py")
    b.generate(a_prompt, max_tokens=4)
    b.generate(b_prompt, max_tokens=4)  # a long stretch of the cache is dropped: saved first
    assert len(b.states) == 1
    typed = infill_prompt(SOURCE[:2500] + "x", SOURCE[2500:3000], path="engine.py")
    warm = b.generate(typed, max_tokens=16)
    assert warm.timings.state_loads == 1 and warm.timings.prompt_tokens_evaluated <= 3
    cold = LlamaCppBackend(TINY, LlamaSettings(n_threads=1, state_cache_mb=0)).generate(typed, max_tokens=16)
    assert warm.text == cold.text


def test_worker_cancels_queued_jobs_at_once():
    class Slow(DoubleBackend):
        """A stand-in backend that records what ran (the real model is covered above)."""

        def __init__(self):
            self.ran = []

        def generate(self, prompt, **kw):
            import time

            from sc2lsp.backends.base import Generation

            self.ran.append(prompt)
            end = time.monotonic() + 0.2
            while not kw["should_stop"]() and time.monotonic() < end:
                time.sleep(0.001)
            return Generation(prompt, "cancelled" if kw["should_stop"]() else "stop")

    w = ModelWorker()
    backend = Slow()
    w.load(lambda: backend).result(timeout=5)
    jobs = [w.submit(Job(prompt=str(i), max_tokens=1)) for i in range(5)]
    results = [j.future.result(timeout=5) for j in jobs]
    assert [r.stop_reason for r in results] == ["cancelled"] * 4 + ["stop"]
    assert backend.ran[-1] == "4" and len(backend.ran) <= 2
    w.close()


class Streaming(DoubleBackend):
    """A backend that streams a fixed text slowly (the engine logic is what is under test here)."""

    name = "streaming"

    def __init__(self, text: str, seconds_per_char: float = 0.02):
        self.text, self.delay, self.calls = text, seconds_per_char, 0

    def generate(self, prompt, *, max_tokens, should_stop=None, on_text=None, **kw):
        import time

        from sc2lsp.backends.base import Generation, Timings

        self.calls += 1
        out = ""
        for ch in self.text:
            time.sleep(self.delay)
            out += ch
            if on_text:
                on_text(out)
            if should_stop and should_stop():
                return Generation(out, "cancelled", Timings(generated_tokens=len(out)))
        return Generation(out, "stop", Timings(generated_tokens=len(out)))


def test_typing_along_a_generation_that_is_still_running():
    backend = Streaming("math.hypot(dx, dy)")
    e = Engine(Settings(syntax_check=False), backend_factory=lambda s: backend)
    e.start().result(timeout=5)
    try:
        text = "def d(dx, dy):\n    return \n"
        off = text.index("return ") + 7
        first = e.complete(Cursor("u", text, off, "python"))
        while len(e._last.job.partial) < 3:  # the model has produced "mat" and goes on
            pass
        typed = text[:off] + "ma" + text[off:]
        second = e.complete(Cursor("u", typed, off + 2, "python"))
        s1, s2 = first.future.result(timeout=5), second.future.result(timeout=5)
        assert s1.text == "math.hypot(dx, dy)" and s1.reason == "stop"  # not cancelled by the keystroke
        assert s2.source == "attached" and s2.text == "th.hypot(dx, dy)"
        assert backend.calls == 1
        # typing something else than the suggestion: a new generation
        other = text[:off] + "x" + text[off:]
        assert e.complete(Cursor("u", other, off + 1, "python")).future.result(timeout=5).source == "model"
        assert backend.calls == 2
    finally:
        e.close()


def test_mid_line_generation_stops_at_the_end_of_the_line():
    backend = Streaming("a, b)\n    more()\n", seconds_per_char=0.001)
    e = Engine(Settings(syntax_check=False), backend_factory=lambda s: backend)
    e.start().result(timeout=5)
    try:
        e.complete(Cursor("u", "f(x, y)\n", 5, "python")).future.result(timeout=5)
        assert "\n" in e._last.job.stop  # "y)" after the cursor: mid-line, one line is shown
        e.complete(Cursor("u2", "f(x, )\n", 5, "python")).future.result(timeout=5)
        assert "\n" not in e._last.job.stop  # only a closer after the cursor: multi-line allowed
    finally:
        e.close()


def test_stopping_when_settled_shows_the_same_suggestions_with_fewer_tokens():
    """Multi-line requests at line ends of real files, with ``stop_when_settled`` on and off: the
    same suggestions; where it stopped ("done"), fewer tokens than the full generation."""
    import json.decoder
    import random

    on, off = make_engine(stop_when_settled=True, repo_context=False), make_engine(stop_when_settled=False, repo_context=False)
    sources = [SOURCE, GEOMETRY, Path(json.decoder.__file__).read_text()]
    rng, done = random.Random(3), 0
    try:
        for i in range(24):
            text = sources[i % len(sources)]
            off_ = text.index("\n", rng.randrange(len(text) - 200))  # the end of a line
            cur = Cursor(f"file:///w/{i % len(sources)}.py", text, off_, "python", f"{i}.py")
            a, b = on.complete(cur).future.result(timeout=120), off.complete(cur).future.result(timeout=120)
            assert a.text == b.text, (text[:off_][-80:], a.raw, b.raw)
            assert b.reason != "done" and b.raw.startswith(a.raw)
            if a.reason == "done":
                done += 1
                assert a.timings["generated_tokens"] < b.timings["generated_tokens"]
    finally:
        on.close()
        off.close()
    assert done >= 6, done


def test_a_crlf_document_gets_the_prompt_and_suggestions_of_its_lf_twin():
    """Windows line endings never reach the model (core.prompt writes them as \\n, in training
    too): the same prompt as the LF file, the same suggestions, written back with \\r\\n."""
    e = make_engine()
    try:
        for needle in ("    def distance(self", "import math", "def centroid(points", "\n\n"):
            lf = at(GEOMETRY, needle)
            crlf_text = GEOMETRY.replace("\n", "\r\n")
            crlf = Cursor(lf.uri, crlf_text, len(GEOMETRY[: lf.offset].replace("\n", "\r\n")), "python", "a.py")
            a = e.complete(lf).future.result(timeout=120)
            prompt_lf = e.last_prompt
            b = e.complete(crlf).future.result(timeout=120)
            assert "\r" not in e.last_prompt and e.last_prompt == prompt_lf, needle
            assert b.text == a.text.replace("\n", "\r\n"), (needle, a.text, b.text)
            assert "\r" not in a.text
    finally:
        e.close()


def test_a_warm_up_after_close_is_refused_not_raised():
    """The model can finish loading after the server closed the engine (a client that exits at
    once); the load's callback then asks for the warm-up a didOpen left pending. It logged
    'cannot schedule new futures after shutdown' from a future's callback."""
    e = make_engine()
    e.close()
    assert e.model_state == "ready"
    assert e.warm(at(GEOMETRY, "import math")) is False


def test_a_context_length_past_the_models_training_is_capped_with_a_warning():
    """contextLength 1,048,576 on a model trained on 2,048 tokens took 3.2 GB of KV cache (on a
    3B it would not fit) with only llama.cpp's stderr to say so."""
    notes: list[tuple[str, str]] = []
    e = Engine(Settings(model=TINY, threads=1, context_length=1 << 20), notify=lambda level, msg: notes.append((level, msg)))
    try:
        e.start().result(timeout=60)
        assert e.worker.backend.n_ctx == 2048
        assert [lvl for lvl, m in notes if "contextLength 1048576" in m and "2048" in m] == ["warning"], notes
        s = e.complete(at(GEOMETRY, "import math")).future.result(timeout=120)
        assert s.source == "model"
    finally:
        e.close()
    notes.clear()
    e = make_engine(context_length=1024)  # within the training length: as asked, no warning
    try:
        assert e.worker.backend.n_ctx == 1024 and not e.worker.backend.warnings
    finally:
        e.close()
