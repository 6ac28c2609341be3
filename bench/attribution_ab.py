"""Whole attribution queries, this code against a baseline, in one process: the steadiest ratio.

``bench/attribution.py --query-only`` runs each code in its own process, one after the other;
on a shared machine those runs drift by 1.2-1.7x within minutes, more than most changes to the
query path are worth. Here both packages are imported side by side (the baseline under another
name), each opens the same index, and they alternate query by query (which one goes first
alternates too), so both see the same machine. Per query: the CPU time of the query thread
(``time.thread_time``) and a digest of the answer (spans, counts, sources). Prints a table, then
JSON; exits 1 when any answer differs.

    .venv/bin/python bench/attribution_ab.py --index INDEX (--baseline-rev REV | --baseline-python)
        [--queries-pickle FILE | --corpus DIR ...] [--queries N] [--seed S] [--rounds N] [--json out.json]

``--baseline-rev REV``: that revision's ``sc2lsp`` (``git archive``; its compiled kernels are built
when it has them and a C compiler is there). ``--baseline-python``: this tree's code with the
compiled kernels off (``rawsearch._C`` / ``normalize._C`` = None), against the same code with
them. Queries as in ``bench/attribution_scan.py``: a pickle of ``(copied, own_code)`` lists of
texts, or ``bench/attribution.py``'s recipe over the corpus the index was built from.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.attribution import add_query_arguments, extract_rev, queries_of  # noqa: E402

NAME = "sc2lsp_baseline"


def baseline_package(rev: str | None, tmp: Path):
    """``sc2lsp.attribution`` of revision ``rev`` (or of this tree, compiled kernels off) under the
    name ``sc2lsp_baseline``."""
    if rev is None:
        shutil.copytree(ROOT / "sc2lsp", tmp / "sc2lsp", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        extract_rev(rev, tmp)
    shutil.move(str(tmp / "sc2lsp"), str(tmp / NAME))
    sys.path.insert(0, str(tmp))
    pkg = importlib.import_module(f"{NAME}.attribution")
    if rev is None:
        for mod in ("rawsearch", "normalize"):
            setattr(importlib.import_module(f"{NAME}.attribution.{mod}"), "_C", None)
    return pkg


def _digest(spans) -> str:
    return hashlib.sha1(json.dumps([s.to_dict() for s in spans], sort_keys=True).encode()).hexdigest()


def run(index: str, base_pkg, this_pkg, queries: list[str], rounds: int) -> dict:
    """Both codes on every query, alternating, each with its own freshly opened index per round
    (so its text cache starts empty, as a new server's does): per-query CPU ms and digests."""
    per_round = []
    same = None
    for r in range(rounds):
        ia, ib = base_pkg.AttributionIndex.open(index), this_pkg.AttributionIndex.open(index)
        ia.check(queries[-1])  # warm-up: imports and the hash tables' power cache
        ib.check(queries[-1])
        ta, tb, equal = [], [], 0
        for i, q in enumerate(queries):
            order = ((ia, ta), (ib, tb)) if (i + r) % 2 else ((ib, tb), (ia, ta))
            digests = []
            for idx, times in order:
                c = time.thread_time()
                spans = idx.check(q)
                times.append((time.thread_time() - c) * 1e3)
                digests.append(_digest(spans))
            equal += digests[0] == digests[1]
        same = equal if same is None else min(same, equal)
        a, b = np.asarray(ta), np.asarray(tb)
        stats = {}
        for name, x in (("baseline", a), ("this", b)):
            stats[name] = {"p50_ms": float(np.percentile(x, 50)), "p95_ms": float(np.percentile(x, 95)),
                           "mean_ms": float(x.mean())}
        stats["ratio"] = {k: stats["this"][k] / stats["baseline"][k] for k in stats["this"]}
        stats["load_average"] = os.getloadavg()[0]
        per_round.append(stats)
    med = lambda key, k: float(np.median([s[key][k] for s in per_round]))  # noqa: E731
    return {"queries": len(queries), "same_answers": same, "rounds": per_round,
            "median": {key: {k: med(key, k) for k in ("p50_ms", "p95_ms", "mean_ms")}
                       for key in ("baseline", "this", "ratio")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    base = ap.add_mutually_exclusive_group(required=True)
    base.add_argument("--baseline-rev", default=None)
    base.add_argument("--baseline-python", action="store_true",
                      help="this code with the compiled kernels off as the baseline")
    add_query_arguments(ap)
    args = ap.parse_args()
    copied, own = queries_of(args)
    import sc2lsp.attribution as this_pkg
    from sc2lsp.attribution.speedups import C

    with tempfile.TemporaryDirectory(prefix="sc2lsp-attr-ab-") as tmp:
        base_pkg = baseline_package(None if args.baseline_python else args.baseline_rev, Path(tmp))
        base_c = getattr(importlib.import_module(f"{NAME}.attribution.rawsearch"), "_C", None)
        result = {"index": args.index, "baseline": "this code, Python only" if args.baseline_python
                  else args.baseline_rev, "baseline_compiled": base_c is not None, "this_compiled": C is not None}
        for kind, qs in (("copied", copied), ("own code", own)):
            result[kind] = run(args.index, base_pkg, this_pkg, qs, args.rounds)
    print(f"baseline: {result['baseline']} (compiled kernels: {result['baseline_compiled']}); this code's "
          f"compiled kernels: {result['this_compiled']}; CPU ms per query, median of {args.rounds} rounds")
    print(f"{'queries':<10} {'':<10} {'p50':>8} {'p95':>8} {'mean':>8}   same answers   load")
    for kind in ("copied", "own code"):
        r = result[kind]
        loads = "/".join(f"{s['load_average']:.1f}" for s in r["rounds"])
        for key, unit in (("baseline", "ms"), ("this", "ms"), ("ratio", "x")):
            m = r["median"][key]
            extra = f"   {r['same_answers']}/{r['queries']}{'':<8}{loads}" if key == "ratio" else ""
            print(f"{kind if key == 'baseline' else '':<10} {key:<10} " +
                  " ".join(f"{m[k]:>7.2f}{unit[0] if unit == 'x' else ' '}" for k in ("p50_ms", "p95_ms", "mean_ms"))
                  + extra)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(result[k]["same_answers"] == result[k]["queries"] for k in ("copied", "own code")) else 1


if __name__ == "__main__":
    sys.exit(main())
