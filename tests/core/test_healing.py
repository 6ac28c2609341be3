"""Token healing: the pure plan (sc2lsp.core.healing) and the backend on the real embedded model."""

from __future__ import annotations

from pathlib import Path

import pytest

from sc2lsp.core.healing import Heal, PieceTable, advance, plan_heal

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"

#: a toy vocabulary: id -> piece (id 0 is a special token: empty piece)
VOCAB = [b"", b"import", b" ", b" os", b" sys", b"self", b".", b"na", b"name", b"names", b"n", b"a",
         b")", b"re", b"turn", b"return", b"\xff", b"\xff\xfe"]
TABLE = PieceTable(VOCAB)


def ids(table: PieceTable, lo_hi: tuple[int, int]) -> set[int]:
    lo, hi = lo_hi
    return set(table.order[lo:hi])


def test_tokens_starting_with_some_bytes():
    assert ids(TABLE, TABLE.starting_with(b"na")) == {7, 8, 9}
    assert ids(TABLE, TABLE.starting_with(b" ")) == {2, 3, 4}
    assert ids(TABLE, TABLE.starting_with(b"\xff")) == {16, 17}  # no successor overflow
    assert ids(TABLE, TABLE.starting_with(b"zz")) == set()
    assert 0 not in ids(TABLE, TABLE.starting_with(b""))  # special tokens never allowed
    assert set(TABLE.prefixes_of(b"name")) == {7, 10}  # "n", "na": the text may come back in pieces
    assert TABLE.extends(b"na") and not TABLE.extends(b"names") and not TABLE.extends(b")")


def test_plan_takes_back_the_partial_last_token():
    # "import " -> import, " ": the space is extended by " os" / " sys"
    assert plan_heal([1, 2], TABLE, max_bytes=100) == Heal(1, b" ")
    # "self.na" -> self . na
    assert plan_heal([5, 6, 7], TABLE, max_bytes=100) == Heal(2, b"na")
    # ")" extends to nothing: nothing is taken back
    assert plan_heal([5, 12], TABLE, max_bytes=100) == Heal(2)
    # "re" "turn": two tokens that one token spells whole
    assert plan_heal([2, 13, 14], TABLE, max_bytes=100) == Heal(1, b"return")


def test_plan_stays_inside_the_allowed_bytes_and_never_removes_specials():
    assert plan_heal([5, 6, 7], TABLE, max_bytes=1) == Heal(3)  # "na" is 2 bytes
    assert plan_heal([5, 6, 7], TABLE, max_bytes=0) == Heal(3)
    assert plan_heal([0, 7], TABLE, max_bytes=100, max_tokens=3) == Heal(1, b"na")  # stops at the special
    assert plan_heal([], TABLE, max_bytes=100) == Heal(0)


def test_advance_through_the_removed_text():
    assert advance(b"na", b"name") == b""
    assert advance(b"na", b"n") == b"a"
    assert advance(b"na", b"os") is None
    assert advance(b"na", b"") is None


# ----------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def backend():
    from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings

    return LlamaCppBackend(TINY, LlamaSettings(n_threads=1))


def _prompt(prefix: str, suffix: str = "\n") -> str:
    from sc2lsp.core.prompt import infill_prompt

    return infill_prompt(prefix, suffix, path="a.py")


@pytest.mark.parametrize("prefix", ["from collections import ", "import ", "class A:\n    def f(self):\n        return self.na",
                                    "def f(self):\n    return sel"])
def test_healed_generation_continues_the_typed_text(backend, prefix):
    from sc2lsp.core.tokens import STOP_TOKENS

    g = backend.generate(_prompt(prefix), max_tokens=8, stop=STOP_TOKENS, heal_bytes=len(prefix.encode()))
    assert g.timings.healed_tokens >= 1
    tokens = backend.tokenize(_prompt(prefix))
    assert g.timings.prompt_tokens == len(tokens) - g.timings.healed_tokens
    # the output starts at the cursor: the removed text is regenerated, then stripped
    assert g.timings.generated_tokens >= 1
    if g.text:
        whole = prefix + g.text
        # tokenizing prompt + text again: the healed piece is now inside a longer token or
        # followed by the new text; either way the visible text continues the prefix exactly
        assert whole.startswith(prefix)


def test_healing_off_is_the_old_behaviour(backend):
    prefix = "def f(self):\n    return sel"
    a = backend.generate(_prompt(prefix), max_tokens=6)
    b = backend.generate(_prompt(prefix), max_tokens=6, heal_bytes=0)
    assert a.text == b.text and b.timings.healed_tokens == 0


def test_first_token_is_constrained_to_the_removed_text(backend):
    """The constrained first token starts with the removed text: what the backend chose is in the
    allowed set and its piece starts with (or spells a prefix of) the removed bytes."""
    prefix = "import "
    tokens = backend.tokenize(_prompt(prefix))
    heal = backend.plan_heal(tokens, len(prefix.encode()))
    assert heal.active and heal.removed.endswith(b" ")
    backend.generate(_prompt(prefix), max_tokens=1, heal_bytes=len(prefix.encode()))
    first = backend.llm._input_ids[heal.keep]  # the first generated token sits right after the kept prompt
    assert advance(heal.removed, backend.pieces.pieces[first]) is not None


def test_healing_keeps_the_kv_cache_for_the_next_keystroke(backend):
    prefix = "import os\n\n\nclass Config:\n    def __init__(self, path):\n        self.path = path\n\n    def exists(self):\n        return os.pa"
    backend.generate(_prompt(prefix), max_tokens=4, heal_bytes=len(prefix.encode()))
    g = backend.generate(_prompt(prefix + "t"), max_tokens=4, heal_bytes=len(prefix.encode()) + 1)
    assert g.timings.prompt_tokens_reused >= g.timings.prompt_tokens - 3
    assert g.timings.prompt_tokens_evaluated <= 3


def test_engine_heals_in_spm_only_and_when_enabled():
    from sc2lsp.config import Settings
    from sc2lsp.engine import Cursor, Engine

    text = "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def copy(self):\n        return sel\n"
    cur = Cursor("file:///w/s.py", text, text.index("return sel") + len("return sel"), "python", "s.py")
    seen = {}
    for name, kw in {"on": {}, "off": {"token_healing": False}, "psm": {"fim_mode": "psm"}}.items():
        e = Engine(Settings(model=str(TINY), threads=1, max_prompt_ms=600_000, max_predict_ms=600_000, **kw))
        try:
            e.start().result(timeout=120)
            s = e.complete(cur).future.result(timeout=300)
            seen[name] = s
        finally:
            e.close()
    assert seen["on"].timings["healed_tokens"] >= 1
    assert seen["off"].timings["healed_tokens"] == 0 and seen["psm"].timings["healed_tokens"] == 0
    # the healed suggestion starts at the cursor: it never repeats the typed "sel"
    assert not seen["on"].text.startswith("sel")
