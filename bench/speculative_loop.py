"""Where the speculative token loop's time goes inside real generations (``bench/speculative.py``
runs this; see docs/server.md "Round 5"): every ``llama_decode`` call of the speculative and the
plain sc2-tiny backend timed on the thread's CPU clock with its rows, the loop's own time beside it.
"""

from __future__ import annotations

import statistics
import time

from bench.speculative import MAX_TOKENS, TINY, _cpu_clocked, prompt_of
from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings
from sc2lsp.core.tokens import STOP_TOKENS


def loop_profile(items: list[dict]) -> dict:
    """Where the token loop's time goes, measured inside real generations (not the isolated passes
    of ``tiny_costs``): each position run once by the speculative and the plain backend (each first
    in turn), every ``llama_decode`` call timed on the thread's CPU clock with its rows, the loop's
    own time beside it. Per backend: ms per pass in the loop, in ``llama_decode`` and outside it
    (Python: lookup, policy, batch, argmax, stop checks); the speculative passes' cost by rows as a
    ratio to the plain backend's one-row pass, and a least-squares line cost = a + b * (rows - 2)
    (the curve that ``bound`` prices with as "in-loop")."""
    backends = {"spec": LlamaCppBackend(TINY, LlamaSettings(n_threads=1, speculative=True)),
                "plain": LlamaCppBackend(TINY, LlamaSettings(n_threads=1, speculative=False))}
    calls: dict[str, list[tuple[int, float]]] = {k: [] for k in backends}
    on = {"now": None}
    for k, b in backends.items():
        dec = b._llama_decode

        def timed(ctx, batch, dec=dec, k=k):
            t0 = time.thread_time()
            try:
                return dec(ctx, batch)
            finally:
                if on["now"] == k:
                    calls[k].append((batch.n_tokens, time.thread_time() - t0))
        b._llama_decode = timed
    cpu = {k: _cpu_clocked(b) for k, b in backends.items()}
    loop = {k: 0.0 for k in backends}
    names = list(backends)
    for i, p in enumerate(items):
        for k in names[i % 2:] + names[: i % 2]:
            b = backends[k]
            b.history.clear()
            if "before" in p:
                b.generate(prompt_of(p["before"]), max_tokens=8, stop=STOP_TOKENS)
            b.warm(prompt_of(p))
            on["now"] = k
            b.generate(prompt_of(p), max_tokens=MAX_TOKENS, stop=STOP_TOKENS)
            on["now"] = None
            loop[k] += cpu[k][0]
    for b in backends.values():
        b.close()
    one = statistics.mean(t for r, t in calls["plain"] if r == 1)
    out: dict = {"plain_one_row_ms": round(one * 1000, 3)}
    for k, c in calls.items():
        dec = sum(t for _, t in c)
        out[k] = {"passes": len(c), "loop_ms_per_pass": round(loop[k] / len(c) * 1000, 4),
                  "decode_ms_per_pass": round(dec / len(c) * 1000, 4),
                  "other_ms_per_pass": round((loop[k] - dec) / len(c) * 1000, 4),
                  "other_share": round((loop[k] - dec) / loop[k], 3)}
    by_rows: dict[int, list[float]] = {}
    for r, t in calls["spec"]:
        by_rows.setdefault(r, []).append(t / one)
    out["spec_cost_by_rows"] = {r: {"passes": len(v), "mean": round(statistics.mean(v), 3)}
                                for r, v in sorted(by_rows.items())}
    xs = [r - 2 for r, _ in calls["spec"]]
    ys = [t / one for _, t in calls["spec"]]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mx) ** 2 for x in xs))
    out["fit"] = {"two_rows": round(my - slope * mx, 3), "per_extra_row": round(slope, 3)}
    return out


def inloop_curve(profiles: dict[str, dict]) -> dict[str, float]:
    """``bound``'s cost dict from the in-loop line fitted over every situation's speculative passes."""
    fits = [p["fit"] for p in profiles.values()]
    a = sum(f["two_rows"] for f in fits) / len(fits)
    b = sum(f["per_extra_row"] for f in fits) / len(fits)
    return {"1+pad": round(a, 3), **{f"k={k}": round(a + b * (k - 2), 3) for k in (2, 3, 4, 6, 8)}}
