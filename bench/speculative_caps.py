"""Speculative decoding on sc2-tiny with different caps on the drafted tokens per pass
(``draft_max``; the adaptive policy either way) against plain greedy, in one process: each
position run by every backend in turn, the fastest of ``--reps`` by the token loop's thread CPU
time (docs/server.md "Round 5").

    nice -n 5 .venv/bin/python bench/speculative_caps.py [--positions 12] [--caps 8 4 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

from bench.speculative import MAX_TOKENS, TINY, _cpu_clocked, prompt_of, situations  # noqa: E402
from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings  # noqa: E402
from sc2lsp.core.tokens import STOP_TOKENS  # noqa: E402


def run(items: list[dict], caps: list[int], reps: int) -> dict:
    backends = {"plain": LlamaCppBackend(TINY, LlamaSettings(n_threads=1, speculative=False))}
    for cap in caps:
        backends[f"max {cap}"] = LlamaCppBackend(TINY, LlamaSettings(n_threads=1, speculative=True, draft_max=cap))
    cpu = {k: _cpu_clocked(b) for k, b in backends.items()}
    tot = {k: {"cpu": 0.0, "tokens": 0, "passes": 0} for k in backends}
    texts: dict[str, list[str]] = {k: [] for k in backends}
    names = list(backends)
    for i, p in enumerate(items):
        for k in names[i % len(names):] + names[: i % len(names)]:  # each first in turn
            b, best = backends[k], None
            for _ in range(reps):
                b.history.clear()
                if "before" in p:
                    b.generate(prompt_of(p["before"]), max_tokens=8, stop=STOP_TOKENS)
                b.warm(prompt_of(p))
                g = b.generate(prompt_of(p), max_tokens=MAX_TOKENS, stop=STOP_TOKENS)
                best = cpu[k][0] if best is None else min(best, cpu[k][0])
            tot[k]["cpu"] += best
            tot[k]["tokens"] += g.timings.generated_tokens
            tot[k]["passes"] += g.timings.passes
            texts[k].append(g.text)
    for b in backends.values():
        b.close()
    ref = tot["plain"]["tokens"] / tot["plain"]["cpu"]
    return {k: {"cpu_speedup_vs_plain": round(v["tokens"] / v["cpu"] / ref, 3),
                "tokens_per_pass": round(v["tokens"] / max(1, v["passes"]), 3),
                "identical_to_first_cap": sum(a == b for a, b in zip(texts[k], texts[f"max {caps[0]}"]))}
            for k, v in tot.items() if k != "plain"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--positions", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--caps", type=int, nargs="+", default=[8, 4, 3])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict = {"load_before": os.getloadavg(), "positions": args.positions, "reps": args.reps}
    out["situations"] = {name: run(items, args.caps, args.reps) for name, items in situations(args.positions).items()}
    out["load_after"] = os.getloadavg()
    for name, r in out["situations"].items():
        print(f"{name:8s} " + "  ".join(f"{k}: {v['cpu_speedup_vs_plain']:.3f} ({v['tokens_per_pass']:.2f} tok/pass, "
                                         f"{v['identical_to_first_cap']}/{args.positions} same text)" for k, v in r.items()))
    print(f"thread CPU time of the token loop vs plain greedy; load {out['load_before'][0]:.1f} -> {out['load_after'][0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
