"""``sc2lsp stats [--json] [--total]``: the language server's acceptance statistics per model and day
(shown, accepted whole / partly, characters accepted, acceptance rate, latency p50/p95). They are kept
on this machine only (``sc2lsp.stats``: ``~/.local/state/sc2lsp/stats.jsonl``) and never sent."""

from __future__ import annotations

import argparse
import json

from ..stats import aggregate, read, stats_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.add_argument("--total", action="store_true", help="one row per model over all days")


def run(args: argparse.Namespace) -> int:
    path = stats_file()
    rows = [r.as_dict() for r in aggregate(read(path), by_day=not args.total)]
    if args.json:
        print(json.dumps({"file": str(path) if path else None, "rows": rows}, indent=1))
        return 0
    if path is None:
        print("acceptance statistics are off (SC2LSP_STATS=0)")
        return 0
    if not rows:
        print(f"no statistics yet ({path}); they are recorded while the language server serves suggestions")
        return 0
    head = ("DAY", "MODEL", "SHOWN", "WHOLE", "PARTLY", "RATE", "CHARS", "P50 MS", "P95 MS")
    fmt = lambda v, f="{:.0f}": "-" if v is None else f.format(v)  # noqa: E731
    table = [head] + [(r["day"], r["model"], str(r["shown"]), str(r["accepted_whole"]), str(r["accepted_partly"]),
                       fmt(None if r["acceptance_rate"] is None else 100 * r["acceptance_rate"], "{:.1f}%"),
                       str(r["chars_accepted"]), fmt(r["latency_p50_ms"]),
                       fmt(r["latency_p95_ms"])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print(f"\n(local only, never sent: {path})")
    return 0
