"""The shipped sc2-tiny visibly completes simple Python, through the server's whole pipeline.

The probes (finetune/probes.py) are everyday spots: `self` after `def __init__(`, the main guard,
closing a call, `import os`, `from collections import ...`, `f.read`, `raise ValueError`. Each
goes through sc2lsp's engine exactly as an editor request does (prompt, token healing, llama.cpp,
post-processing). The shipped model passes 11 of 12 (models/sc2-tiny/metrics.json); this test
fails if a rebuilt or re-exported model, or a change in the pipeline, drops below 10.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.probes import PROBES, run_probes

ROOT = Path(__file__).resolve().parents[2]
GGUF = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"


@pytest.fixture(scope="module")
def results():
    return run_probes(str(GGUF))


def test_probes_pass_through_the_server_pipeline(results):
    failed = [(r["name"], r["before"], r["suggestion"]) for r in results if not r["ok"]]
    assert len(results) == len(PROBES)
    assert len(results) - len(failed) >= 10, failed


def test_metrics_json_records_the_same_probe_results(results):
    """The model card's figures come from metrics.json; they must be what the model does today."""
    recorded = {p["name"]: p for p in json.loads((GGUF.parent / "metrics.json").read_text())["probes"]}
    for r in results:
        assert recorded[r["name"]]["ok"] == r["ok"], (r["name"], r["suggestion"], recorded[r["name"]]["suggestion"])


def test_probe_checks_reject_wrong_answers():
    """The checks are not vacuous: an empty or wrong first line fails each of them."""
    for p in PROBES:
        assert not p.check(""), p.name
        assert not p.check("1 + 1"), p.name
