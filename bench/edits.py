"""Ranged edits on a large document: incremental line starts vs a full rescan per edit.

200 single-character ranged edits (the LSP didChange of typing) spread over a 1 M-character
document, each followed by the position lookup the next request makes. The reference is the same
run with the line table rebuilt from scratch after every edit (what ``Document`` did before), in
the same process, so machine load cancels out in the ratio. Target: 200 edits well under 1 s.

    .venv/bin/python bench/edits.py [--chars 1000000] [--edits 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sc2lsp.lsp.documents import Document  # noqa: E402


def run(chars: int, edits: int, full_rescan: bool, seed: int = 7) -> float:
    rng = random.Random(seed)
    line = "    value = compute(alpha, beta) + 1  # a typical line of code\n"
    doc = Document("file:///big.py", (line * (chars // len(line) + 1))[:chars])
    doc.line_starts()
    n_lines = len(doc.line_starts())
    t = time.perf_counter()
    for i in range(edits):
        ln = rng.randrange(n_lines - 1)
        doc.apply_change("x", (ln, 4), (ln, 5))
        if full_rescan:
            doc._starts = None
        doc.offset_at(ln, 5)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=1_000_000)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    inc = min(run(a.chars, a.edits, False) for _ in range(3))
    ref = min(run(a.chars, a.edits, True) for _ in range(3))
    out = {"chars": a.chars, "edits": a.edits, "incremental_s": round(inc, 4), "full_rescan_s": round(ref, 4),
           "per_edit_ms": round(inc / a.edits * 1000, 3), "speedup": round(ref / inc, 1),
           "target_met": inc < 1.0, "load": os.getloadavg()[0]}
    print(f"| {a.edits} edits on {a.chars:,} chars | incremental {inc:.3f} s ({out['per_edit_ms']} ms/edit) "
          f"| full rescan {ref:.3f} s | x{out['speedup']} | target < 1 s: {'met' if out['target_met'] else 'MISSED'} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
