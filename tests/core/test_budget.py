"""Token budget of infill prompts: the budget holds, and the cut points stay put while typing."""

from __future__ import annotations

import random
import re

import pytest

from sc2lsp.core.budget import BudgetOptions, BudgetPlan, approx_tokens, memo_counter, plan_budget
from sc2lsp.core.prompt import infill_prompt

WORDS = re.compile(r"\w+|[^\w\s]|\n")


def word_tokens(text: str) -> int:
    return len(WORDS.findall(text))


def source(n_lines: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(n_lines):
        indent = "    " * rng.randint(0, 2)
        out.append(f"{indent}value_{i} = compute({', '.join('x' * rng.randint(1, 9) for _ in range(rng.randint(0, 6)))})")
    return "\n".join(out) + "\n"


def check_plan(plan: BudgetPlan, prefix: str, suffix: str, total: int, count, opts: BudgetOptions) -> None:
    kept_prefix, kept_suffix = plan.cut(prefix, suffix)
    assert prefix.endswith(kept_prefix) and suffix.startswith(kept_suffix)
    assert count(kept_prefix) <= plan.prefix_tokens <= plan.prefix_reserve <= int(total * opts.prefix_share)
    assert count(kept_suffix) <= plan.suffix_tokens <= plan.suffix_reserve <= int(total * opts.suffix_share)
    assert plan.context_tokens == total - plan.prefix_reserve - plan.suffix_reserve >= 0
    cursor_line_start = prefix.rfind("\n") + 1
    if plan.prefix_start <= cursor_line_start:  # line boundary unless the cursor's line alone is too long
        assert plan.prefix_start == 0 or prefix[plan.prefix_start - 1] == "\n"
    first_line_end = suffix.find("\n") + 1 or len(suffix)
    if plan.suffix_end >= first_line_end:
        assert plan.suffix_end == len(suffix) or suffix[plan.suffix_end - 1] == "\n"


@pytest.mark.parametrize("count", [approx_tokens, word_tokens], ids=["chars/4", "words"])
def test_budget_respected_everywhere(count):
    rng = random.Random(1)
    text = source(400)
    opts = BudgetOptions()
    for _ in range(300):
        cut = rng.randint(0, len(text))
        prefix, suffix = text[:cut], text[cut:]
        total = rng.choice([64, 256, 1000, 2048, 8192])
        plan = plan_budget(prefix, suffix, total, count, opts)
        check_plan(plan, prefix, suffix, total, count, opts)


def test_budget_with_a_real_bpe_tokenizer(tiny_tokenizer_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_tokenizer_dir / "tokenizer.json"))
    count = memo_counter(lambda t: len(tok.encode(t, add_special_tokens=False).ids))
    text = source(300, seed=5)
    rng = random.Random(2)
    for _ in range(60):
        cut = rng.randint(0, len(text))
        plan = plan_budget(text[:cut], text[cut:], 1024, count)
        check_plan(plan, text[:cut], text[cut:], 1024, count, BudgetOptions())


def test_prefix_start_is_the_smallest_grid_line_that_fits():
    text = source(300)
    prefix, suffix = text, ""
    plan = plan_budget(prefix, suffix, 1000, approx_tokens)
    g = BudgetOptions().grid_lines
    assert plan.prefix_line % g == 0 and plan.prefix_line > 0
    earlier = prefix.split("\n")[plan.prefix_line - g:]
    assert approx_tokens("\n".join(earlier)) > 600  # one grid step earlier does not fit


def test_short_file_is_kept_whole_and_context_gets_the_rest():
    prefix, suffix = "def f(x):\n    return ", "\n\nprint(f(2))\n"
    plan = plan_budget(prefix, suffix, 2048, approx_tokens)
    assert plan.cut(prefix, suffix) == (prefix, suffix)
    assert plan.prefix_reserve == 128 and plan.suffix_reserve == 128  # rounded up to reserve_step
    assert plan.context_tokens == 2048 - 256


def test_huge_lines_are_cut_inside_the_line():
    prefix = "short\n" + "x" * 5000
    suffix = "y" * 5000 + "\nend\n"
    plan = plan_budget(prefix, suffix, 500, approx_tokens)
    check_plan(plan, prefix, suffix, 500, approx_tokens, BudgetOptions())
    kept_prefix, kept_suffix = plan.cut(prefix, suffix)
    assert 0 < len(kept_prefix) <= 1200 and kept_prefix.strip("x") == ""
    assert 0 < len(kept_suffix) <= 400 and kept_suffix.strip("y") == ""


@pytest.mark.parametrize("where", ["prefix", "suffix", "both", "line above"])
def test_a_huge_line_is_never_tokenized_whole(where):
    """A 900,000-character line (a data table, minified code) near the cursor: the plan tokenizes
    only what can fit (``MAX_CHARS_PER_TOKEN`` per token of the budget), not the whole line at
    every step of a search. It took 7 s per keystroke on the server's event loop before."""
    from sc2lsp.core.budget import MAX_CHARS_PER_TOKEN

    huge = "x = [" + "1, " * 300_000
    prefix = {"prefix": "a = 1\n" + huge, "suffix": "a = 1\nb = ", "both": "a = 1\n" + huge,
              "line above": "a = 1\n" + huge + "\nb = "}[where]
    suffix = {"prefix": "\nc = 2\n", "suffix": huge + "]\nc = 2\n", "both": huge + "]\nc = 2\n",
              "line above": "\nc = 2\n"}[where]
    counted: list[int] = []

    def count(text: str) -> int:
        counted.append(len(text))
        return word_tokens(text)

    total, opts = 1024, BudgetOptions()
    plan = plan_budget(prefix, suffix, total, count, opts)
    check_plan(plan, prefix, suffix, total, word_tokens, opts)
    assert max(counted) <= total * MAX_CHARS_PER_TOKEN, max(counted)
    assert sum(counted) <= 40 * total * MAX_CHARS_PER_TOKEN, sum(counted)
    kept_prefix, kept_suffix = plan.cut(prefix, suffix)
    assert kept_prefix.endswith(prefix[-4:]) and kept_suffix.startswith(suffix[:2])
    if where == "prefix":  # the kept part of the huge line uses the budget, as before
        assert plan.prefix_tokens > 0.8 * int(total * opts.prefix_share)


def type_file(text: str, total: int, use_previous: bool, count=approx_tokens):
    """Plans for every keystroke of typing ``text`` from an empty file (suffix fixed)."""
    suffix = "\n\nif __name__ == '__main__':\n    main()\n"
    plans, previous = [], None
    for i in range(1, len(text) + 1):
        plan = plan_budget(text[:i], suffix, total, count, previous=previous if use_previous else None)
        plans.append(plan)
        previous = plan
    return plans, suffix


@pytest.mark.parametrize("use_previous", [False, True], ids=["stateless", "hysteresis"])
def test_cut_points_move_rarely_while_typing(use_previous):
    text = source(250, seed=3)
    plans, suffix = type_file(text, 1200, use_previous)
    g = BudgetOptions().grid_lines
    moves = sum(a.prefix_start != b.prefix_start for a, b in zip(plans, plans[1:]))
    typed_lines = text.count("\n")
    assert moves >= 1  # the file is long enough that the prefix must be cut
    assert moves <= typed_lines // g + 1  # at most one move per grid step of typed lines
    assert len({p.suffix_end for p in plans}) == 1
    # Once the prefix is cut, the context budget no longer changes at all.
    first_cut = next(i for i, p in enumerate(plans) if p.prefix_start > 0)
    assert len({p.context_tokens for p in plans[first_cut:]}) == 1
    # Before that it changes in reserve_step steps, a handful of times.
    assert len({p.context_tokens for p in plans[:first_cut]}) <= 1200 * 0.6 // 128 + 1


def test_prompt_only_grows_at_its_end_on_almost_every_keystroke():
    text = source(250, seed=4)
    plans, suffix = type_file(text, 1200, use_previous=True)
    extended = 0
    prompts = []
    for i, plan in enumerate(plans):
        kept_prefix, kept_suffix = plan.cut(text[: i + 1], suffix)
        prompts.append(infill_prompt(kept_prefix, kept_suffix, path="m.py", repo="r"))
    extended = sum(b.startswith(a) for a, b in zip(prompts, prompts[1:]))
    assert extended / (len(prompts) - 1) > 0.99


def test_hysteresis_typing_and_deleting_at_the_boundary():
    text = source(250, seed=6)
    total = 1200
    # Find a keystroke where the stateless start moves forward.
    for i in range(200, len(text)):
        a = plan_budget(text[:i], "", total)
        b = plan_budget(text[: i + 1], "", total)
        if b.prefix_start != a.prefix_start:
            break
    else:
        pytest.fail("no move found")
    # Stateless: deleting the character moves the start back (the prompt changes twice).
    assert plan_budget(text[:i], "", total).prefix_start == a.prefix_start != b.prefix_start
    # With the previous plan, the start stays where the last keystroke put it.
    after_delete = plan_budget(text[:i], "", total, previous=b)
    assert after_delete.prefix_start == b.prefix_start
    assert after_delete.context_tokens == b.context_tokens


def test_previous_start_given_up_when_the_prefix_shrinks_a_lot():
    text = source(250, seed=7)
    big = plan_budget(text, "", 1200)
    assert big.prefix_line > 0
    small_prefix = text[: text.index("\n", len(text) * 3 // 5)]  # deleted many lines before the cursor
    kept = plan_budget(small_prefix, "", 1200, previous=big)
    assert kept.prefix_line < big.prefix_line  # refilled rather than keeping a near-empty prefix
    assert kept.prefix_tokens >= 0.5 * 720


def test_options_validated():
    with pytest.raises(ValueError):
        BudgetOptions(prefix_share=0.8, suffix_share=0.3)
    with pytest.raises(ValueError):
        BudgetOptions(grid_lines=0)


def test_one_prompt_budget_for_the_engine_and_the_context_cli():
    """The engine and ``sc2lsp context`` plan the same budget (they once kept 96 vs 48 tokens free)."""
    from sc2lsp.config import Settings
    from sc2lsp.commands.context import context_budget
    from sc2lsp.core.budget import PROMPT_OVERHEAD, prompt_budget
    from sc2lsp.engine import Cursor, Engine

    assert prompt_budget(2048, 64, 1536) == (64, 1536)
    assert prompt_budget(1024, 512, 1536) == (256, 1024 - 256 - PROMPT_OVERHEAD)
    assert prompt_budget(128, 64, 1536) == (32, 64)
    text = source(400)
    off = len(text) // 2
    e = Engine(Settings(context_length=1024, repo_context=False))  # no model: n_ctx from the settings
    try:
        e._plan(Cursor("u", text, off), text[:off], text[off:])
        engine_plan = e._plans["u"]
    finally:
        e.close()
    cli_plan, _ = context_budget(text[:off], text[off:], n_ctx=1024)
    assert cli_plan == engine_plan
