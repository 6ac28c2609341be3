"""``bench/attribution_ab.py`` runs end to end on a small real index: both codes answer every query,
the answers are compared, and the JSON says which side ran compiled."""

from __future__ import annotations

import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

from sc2lsp.attribution import Document, build_index
from sc2lsp.attribution.speedups import C

from test_attribution_query_path import VOCABS, _code

ROOT = Path(__file__).resolve().parents[2]


def test_the_in_process_ab_bench_compares_answers(tmp_path):
    rng = random.Random(2)
    texts = [_code(rng, 80, VOCABS["words"] + [f"name_{i}", "value"]) for i in range(8)]
    build_index([Document(path=f"m{i}.py", text=t) for i, t in enumerate(texts)], tmp_path / "idx")
    copied = [t[100:900] for t in texts[:4]]
    own = ["def unrelated(a, b):\n    return a * b + 17\n" * 8, _code(rng, 30, VOCABS["overlapping"])]
    (tmp_path / "q.pkl").write_bytes(pickle.dumps((copied, own)))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "attribution_ab.py"), "--index", str(tmp_path / "idx"),
                          "--baseline-python", "--queries-pickle", str(tmp_path / "q.pkl"), "--rounds", "1",
                          "--json", str(tmp_path / "ab.json")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "ab.json").read_text())
    assert result["copied"]["same_answers"] == result["copied"]["queries"] == 4
    assert result["own code"]["same_answers"] == 2
    assert result["baseline_compiled"] is False and result["this_compiled"] is (C is not None)
    assert result["copied"]["median"]["this"]["p95_ms"] > 0
    assert "ratio" in out.stdout
