"""The attribution query path's window search alone (``rawsearch.scan_raw``), this code vs a
baseline revision's, call by call on the same documents: a ratio steadier than whole queries'.

The whole-query A/B (``bench/attribution.py --query-only``, or two packages in one process)
moves by several percent between runs on a shared machine, so a change to the window search
worth a few percent of a query cannot be seen there. This bench records every ``scan_raw`` call
that the queries make (the document's text, the query's normal form, the window, ``min_chars``)
with this code, then replays them with the baseline's ``scan_raw`` and this one alternately,
call by call, each with its own kept token positions per document, ``--rounds`` times; it checks
that both give the same ``RawHit`` on every call and prints the CPU time of each and the ratio
(table, then JSON).

    .venv/bin/python bench/attribution_scan.py --index INDEX --baseline-rev REV
        [--queries-pickle FILE | --corpus DIR ...] [--queries N] [--seed S] [--rounds N] [--json out.json]

Queries: ``--queries-pickle`` (a pickle of ``(copied, own_code)`` lists of texts), or the recipe
of ``bench/attribution.py`` (``--queries`` copies of indexed text and as many pieces of this
repository, ``--seed``), which reads the corpus the index was built from (``--corpus``, default
``bench/attribution.py``'s).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.attribution import add_query_arguments, extract_rev, queries_of  # noqa: E402


def record(index: str, queries: dict[str, list[str]]) -> dict[str, tuple[dict, list]]:
    """Per kind: the documents' texts by id and the ``scan_raw`` calls the queries make."""
    from sc2lsp.attribution import AttributionIndex, segment

    real = segment.scan_raw
    out: dict[str, tuple[dict, list]] = {}
    try:
        for kind, qs in queries.items():
            docs: dict[int, str] = {}
            calls: list = []

            def scan(raw, norm, qp, min_chars=0, occ=None):
                docs.setdefault(id(raw), raw)
                calls.append((id(raw), norm, qp, min_chars))
                return real(raw, norm, qp, min_chars, occ)

            segment.scan_raw = scan
            idx = AttributionIndex.open(index)  # a fresh index per kind: its own text cache
            for q in qs:
                idx.check(q)
            out[kind] = (docs, calls)
    finally:
        segment.scan_raw = real
    return out


def baseline_rawsearch(rev: str, tmp: Path):
    """The ``rawsearch`` module of revision ``rev`` (``extract_rev``: with its compiled kernels when
    it has them), imported as a package of another name beside this one."""
    extract_rev(rev, tmp)
    shutil.move(str(tmp / "sc2lsp"), str(tmp / "sc2lsp_baseline"))
    sys.path.insert(0, str(tmp))
    return importlib.import_module("sc2lsp_baseline.attribution.rawsearch")


def replay(docs: dict, calls: list, base, cur, rounds: int) -> dict:
    """Both scans on every call, alternating which goes first; CPU seconds of each per round,
    and how many calls gave a different ``RawHit``."""
    fields = lambda h: (h.result, h.p, h.sb, h.sa, list(h.held), h.resume)  # noqa: E731
    different = sum(fields(base.scan_raw(docs[d], n, qp, m)) != fields(cur.scan_raw(docs[d], n, qp, m))
                    for d, n, qp, m in calls)
    tt = time.thread_time
    per_round = []
    for _ in range(rounds):
        occ_b: dict = {}
        occ_c: dict = {}
        tb = tc = 0.0
        for i, (d, n, qp, m) in enumerate(calls):
            raw = docs[d]
            ob, oc = occ_b.setdefault(d, {}), occ_c.setdefault(d, {})
            if i % 2:
                c = tt(); base.scan_raw(raw, n, qp, m, ob); tb += tt() - c  # noqa: E702
                c = tt(); cur.scan_raw(raw, n, qp, m, oc); tc += tt() - c  # noqa: E702
            else:
                c = tt(); cur.scan_raw(raw, n, qp, m, oc); tc += tt() - c  # noqa: E702
                c = tt(); base.scan_raw(raw, n, qp, m, ob); tb += tt() - c  # noqa: E702
        per_round.append({"baseline_ms": tb * 1e3, "this_ms": tc * 1e3, "ratio": tc / tb if tb else None})
    ratios = sorted(r["ratio"] for r in per_round)
    return {"calls": len(calls), "documents": len(docs), "different_hits": different, "rounds": per_round,
            "median_ratio": ratios[len(ratios) // 2], "load_average": os.getloadavg()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--baseline-rev", required=True)
    add_query_arguments(ap)
    args = ap.parse_args()
    copied, own = queries_of(args)
    recorded = record(args.index, {"copied": copied, "own code": own})
    from sc2lsp.attribution import rawsearch

    with tempfile.TemporaryDirectory(prefix="sc2lsp-scan-bench-") as tmp:
        base = baseline_rawsearch(args.baseline_rev, Path(tmp))
        result = {kind: replay(docs, calls, base, rawsearch, args.rounds) for kind, (docs, calls) in recorded.items()}
    result = {"baseline_rev": args.baseline_rev, "index": args.index, **result}
    for kind in ("copied", "own code"):
        r = result[kind]
        rounds = ", ".join(f"{x['baseline_ms']:.0f} -> {x['this_ms']:.0f} ms ({x['ratio']:.3f}x)" for x in r["rounds"])
        print(f"{kind:<9} {r['calls']:>6} calls on {r['documents']:>5} documents: {rounds}; median "
              f"{r['median_ratio']:.3f}x; different hits {r['different_hits']}; load {r['load_average']:.1f}")
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(result[k]["different_hits"] == 0 for k in ("copied", "own code")) else 1


if __name__ == "__main__":
    sys.exit(main())
