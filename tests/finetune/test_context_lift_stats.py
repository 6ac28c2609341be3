"""bench/context_lift.py's figures: the identifier rate with counts, intervals and a paired test, so
that a with / without ratio on a few hits is not read as a lift (docs/context.md, round 3)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lift():
    spec = importlib.util.spec_from_file_location("context_lift", ROOT / "bench" / "context_lift.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("context_lift", mod)
    spec.loader.exec_module(mod)
    return mod


def _row(w: bool, wo: bool, pred_w="a", pred_wo="a") -> dict:
    return {"with": {"em": False, "es": 0.5, "ident": w, "pred": pred_w},
            "without": {"em": False, "es": 0.25, "ident": wo, "pred": pred_wo}}


def test_wilson_interval(lift):
    assert lift.wilson(0, 0) == (0.0, 0.0)
    lo, hi = lift.wilson(2, 113)  # round 2's tuned row: 0.018 is anywhere from ~0.005 to ~0.06
    assert 0.004 < lo < 0.006 and 0.06 < hi < 0.07
    lo, hi = lift.wilson(50, 100)
    assert lo == pytest.approx(0.404, abs=0.002) and hi == pytest.approx(0.596, abs=0.002)


def test_sign_test(lift):
    assert lift.sign_test(2, 0) == 0.25  # round 2: two discordant cases, both for context
    assert lift.sign_test(0, 0) == 1.0
    assert lift.sign_test(10, 0) == pytest.approx(1 / 1024, abs=1e-4)
    assert lift.sign_test(5, 5) > 0.5


def test_ratio_interval(lift):
    hits = [(True, False)] * 20 + [(True, True)] * 20 + [(False, False)] * 60
    lo, hi = lift.ratio_interval(hits)
    assert lo < 2.0 < hi and lo > 1.3  # 40 / 20 hits: a real lift, but not exactly 2
    assert lift.ratio_interval([(True, False), (False, False)]) is None  # no hit without: unbounded


def test_figures_count_the_discordant_cases(lift):
    rows = [_row(True, False, "x", "y")] * 3 + [_row(False, True, "x", "z")] + [_row(True, True)] * 2 + [_row(False, False)] * 4
    f = lift.figures(rows)
    assert (f["cases"], f["ident_hits_with"], f["ident_hits_without"]) == (10, 5, 3)
    assert (f["ident_only_with"], f["ident_only_without"], f["lines_differ"]) == (3, 1, 4)
    assert f["ident_with"] == 0.5 and f["ident_ratio"] == pytest.approx(5 / 3, abs=0.01)
    assert f["es_ratio"] == 2.0 and f["ident_sign_p"] == pytest.approx(5 / 16)


def test_held_in_splits_the_keys_of_several_repositories(lift):
    held = ["hfhub/huggingface_hub/a.py", "networkx/networkx/b.py", "rxjs/src/c.ts"]
    assert lift.held_in(Path("/w/repos/networkx"), held, True) == ["networkx/b.py"]
    assert lift.held_in(Path("/w/repos/rxjs"), held, True) == ["src/c.ts"]
    assert lift.held_in(Path("/w/repos/networkx"), ["networkx/b.py"], False) == ["networkx/b.py"]


def test_ceiling_counts_the_names_a_prompt_holds(lift):
    prompts = [{"name_in_context": True, "name_in_file": False}] * 3 + [{"name_in_context": True, "name_in_file": True}] \
        + [{"name_in_context": False, "name_in_file": True}] * 2 + [{"name_in_context": False, "name_in_file": False}] * 4
    c = lift.ceiling(prompts)
    assert (c["ident_with"], c["ident_without"], c["ident_ratio"]) == (0.6, 0.3, 2.0)


def test_by_where_splits_the_cases_by_where_the_name_is(lift):
    prompts = [{"name_in_context": True, "name_in_file": False}] * 3 + [{"name_in_context": True, "name_in_file": True}] \
        + [{"name_in_context": False, "name_in_file": True}] * 2 + [{"name_in_context": False, "name_in_file": False}] * 4
    rows = [_row(True, False)] * 2 + [_row(False, False)] + [_row(True, True)] * 3 + [_row(False, True)] * 4
    w = lift.by_where(prompts, rows)
    assert [w[k]["cases"] for k in ("only_in_context", "in_file", "nowhere")] == [3, 3, 4]
    assert (w["only_in_context"]["ident_hits_with"], w["only_in_context"]["ident_hits_without"]) == (2, 0)
    assert (w["in_file"]["ident_hits_with"], w["in_file"]["ident_hits_without"]) == (3, 3)
    assert (w["nowhere"]["ident_hits_with"], w["nowhere"]["ident_hits_without"]) == (0, 4)
    assert sum(w[k]["cases"] for k in w) == len(prompts)  # every case in exactly one part
