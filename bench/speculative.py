"""Speculative decoding from the prompt: acceptance, tokens per pass and decode speed vs plain greedy.

sc2-tiny through real llama.cpp over scripted editing situations built from real files (this
repository's sources and standard library modules), each position run by three backends in
turn, in the same process and run:

* ``spec``: speculative decoding with the adaptive policy, turned on (its default is on only for
  model files of 200 MB or more); flash attention off, every pass a batch of 2+ rows;
* ``stable``: the same backend with ``speculative=False`` and the same 2+-row passes (the
  exactness reference: one token per pass, computed as in a batch); the texts must be identical;
* ``plain``: the default backend with speculation off (one row per pass: the speed reference,
  and how many texts differ from it by the 1-row rounding).

Situations (each position: prompt evaluated first, then the generation timed alone):

* ``suffix``: the cursor on a new line above an existing line, its first characters typed again
  (completing a line whose continuation stands in the suffix);
* ``context``: calling a function defined in the repository context (``name(`` typed, the
  definition in a context file);
* ``retype``: re-typing a block that was just deleted: a request on the file with the block in
  place comes first (as the editor asks before the delete), then the block's first line partly
  typed without it (it is in no part of this prompt: drafts can only come from the earlier one);
* ``plain``: new code: the end of a file's prefix, empty suffix, no context.

Where the loop's time goes (``loop_profile``, a few positions per situation): every
``llama_decode`` call timed inside real generations of the speculative and the plain backend,
ms per pass in llama.cpp and outside it (Python), and the speculative passes' cost by rows as a
ratio to the plain one-row pass; ``bound`` prices its replay with that in-loop curve too ("in-loop
oracle"), beside the isolated passes' curve of ``tiny_costs``.

The 3B-shaped GGUF (``bench/convert_rss.py``'s cache, ``--with-3b``): the cost of one pass over
k = 1, 2, 4, 8, 16 tokens vs one token (all logits read, as the verification does), and the
expected 3B decode speed-up for each situation from the sc2-tiny runs' drafts: a policy with the
3B's measured per-token cost drafts over the same positions, and its passes are priced with the
3B's curve.

    .venv/bin/python bench/speculative.py [--positions 20] [--with-3b] [--json out.json]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings  # noqa: E402
from sc2lsp.backends.speculative import DraftPolicy  # noqa: E402
from sc2lsp.core.prompt import SourceFile, infill_prompt  # noqa: E402
from sc2lsp.core.tokens import STOP_TOKENS  # noqa: E402

TINY = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
MAX_TOKENS = 48


def _sources() -> list[tuple[str, str]]:
    import argparse as ap
    import json.decoder
    import string
    import textwrap

    files = [ROOT / "sc2lsp" / p for p in ("engine.py", "config.py", "core/budget.py", "core/postprocess.py",
                                           "backends/worker.py")]
    out = [(p.name, p.read_text()) for p in files]
    return out + [(Path(inspect.getfile(m)).name, inspect.getsource(m)) for m in (ap, json.decoder, string, textwrap)]


def situations(n: int, seed: int = 15) -> dict[str, list[dict]]:
    """name -> [{"path", "prefix", "suffix", "context"}] built from real files."""
    rng = random.Random(seed)
    src = _sources()
    out: dict[str, list[dict]] = {k: [] for k in ("suffix", "context", "retype", "plain")}
    while min(len(v) for v in out.values()) < n:
        name, text = src[rng.randrange(len(src))]
        lines = text.splitlines(keepends=True)
        i = rng.randrange(10, len(lines) - 10)
        line = lines[i]
        body = line.strip()
        starts = [sum(map(len, lines[:j])) for j in range(len(lines) + 1)]
        if len(body) > 20 and len(out["suffix"]) < n:  # re-type line i just above it
            typed = line[: len(line) - len(line.lstrip()) + 4]
            pre = text[: starts[i]] + typed
            out["suffix"].append({"path": name, "prefix": pre[-1500:], "suffix": ("\n" + text[starts[i]:])[:1000], "context": []})
        if body.startswith("def ") and "(" in body and len(out["context"]) < n:  # call it from another file
            fn = body[4: body.index("(")]
            defn = "".join(lines[i: i + 12])
            other_name, other = src[rng.randrange(len(src))]
            cut = rng.randrange(len(other) // 4, len(other))
            cut = other.rfind("\n", 0, cut) + 1
            pre = other[:cut] + "        result = " + fn + "("
            out["context"].append({"path": other_name, "prefix": pre[-1500:], "suffix": other[cut:][:800],
                                   "context": [SourceFile(name, defn)]})
        if len(body) > 20 and len(out["retype"]) < n:  # a 6-line block deleted, typed again
            block = "".join(lines[i: i + 6])
            typed = line[: len(line) - len(line.lstrip()) + 3]
            before = {"path": name, "prefix": text[: starts[i]][-1500:], "suffix": text[starts[i]:][:800], "context": []}
            out["retype"].append({"path": name, "prefix": (text[: starts[i]] + typed)[-1500:],
                                  "suffix": text[starts[i + 6]:][:800], "context": [], "before": before,
                                  "block": block})
        if len(out["plain"]) < n:
            out["plain"].append({"path": name, "prefix": text[: starts[i]][-1500:], "suffix": "", "context": []})
    return {k: v[:n] for k, v in out.items()}


def prompt_of(p: dict) -> str:
    return infill_prompt(p["prefix"], p["suffix"], path=p["path"], context=p["context"])


def _cpu_clocked(b) -> list[float]:
    """Times ``b``'s token loop on its thread's CPU clock (what other processes took is not
    counted): the returned list holds the last loop's seconds."""
    last = [0.0]
    loop = b._loop

    def timed(*args):
        t0 = time.thread_time()
        try:
            return loop(*args)
        finally:
            last[0] = time.thread_time() - t0
    b._loop = timed
    return last


def run_situation(items: list[dict], threads: int, reps: int) -> dict:
    backends = {
        "spec": LlamaCppBackend(TINY, LlamaSettings(n_threads=threads, speculative=True)),
        "stable": LlamaCppBackend(TINY, LlamaSettings(n_threads=threads, speculative=False, stable_rows=True)),
        "plain": LlamaCppBackend(TINY, LlamaSettings(n_threads=threads, speculative=False)),
    }
    acc = {k: {"ms": 0.0, "cpu": 0.0, "tokens": 0, "passes": 0, "drafted": 0, "accepted": 0} for k in backends}
    cpu = {k: _cpu_clocked(b) for k, b in backends.items()}
    same = same_plain = 0
    names = list(backends)
    for i, p in enumerate(items):
        prompt = prompt_of(p)
        texts = {}
        for k in names[i % 3:] + names[: i % 3]:  # each backend first in turn: no order bias
            b = backends[k]
            runs = []
            for _ in range(reps):  # the fastest of a few runs: a busy machine preempts some
                b.history.clear()  # an earlier rep's output is no draft source
                if "before" in p:  # the request before the delete
                    b.generate(prompt_of(p["before"]), max_tokens=8, stop=STOP_TOKENS)
                b.warm(prompt)  # the prompt first: only the generation is timed
                g = b.generate(prompt, max_tokens=MAX_TOKENS, stop=STOP_TOKENS)
                runs.append((g, cpu[k][0]))
            g = min(runs, key=lambda r: r[0].timings.generate_ms)[0]
            acc[k]["cpu"] += min(r[1] for r in runs)
            texts[k] = g.text
            a, t = acc[k], g.timings
            a["ms"] += t.generate_ms
            a["tokens"] += t.generated_tokens
            a["passes"] += t.passes
            a["drafted"] += t.drafted
            a["accepted"] += t.accepted
        same += texts["spec"] == texts["stable"]
        same_plain += texts["spec"] == texts["plain"]
    s, st, pl = acc["spec"], acc["stable"], acc["plain"]
    policy = backends["spec"].policy
    for b in backends.values():
        b.close()

    def speed(x, clock="ms"):
        return x["tokens"] / x[clock]
    return {
        "positions": len(items), "identical": same, "identical_1row": same_plain, "tokens": s["tokens"],
        "passes": s["passes"], "drafted": s["drafted"], "accepted": s["accepted"],
        "acceptance": round(s["accepted"] / s["drafted"], 3) if s["drafted"] else None,
        "tokens_per_pass": round(s["tokens"] / max(1, s["passes"]), 3),
        "spec_tok_s": round(speed(s) * 1000, 1), "stable_tok_s": round(speed(st) * 1000, 1),
        "plain_tok_s": round(speed(pl) * 1000, 1),
        "speedup_vs_plain": round(speed(s) / speed(pl), 3), "speedup_vs_stable": round(speed(s) / speed(st), 3),
        "stable_vs_plain": round(speed(st) / speed(pl), 3),
        "cpu_speedup_vs_plain": round(speed(s, "cpu") / speed(pl, "cpu"), 3),
        "cpu_speedup_vs_stable": round(speed(s, "cpu") / speed(st, "cpu"), 3),
        "policy_extra_cost": round(policy.extra_cost, 3),
    }


def pass_costs(model: Path, threads: int, reps: int, ks=(1, 2, 4, 8, 16)) -> dict[int, float]:
    """Median ms of one pass over k tokens (logits of every token) after a 512-token prompt."""
    import statistics

    b = LlamaCppBackend(model, LlamaSettings(n_threads=threads, state_cache_mb=0, speculative=True))
    b._pad = False  # measure the raw shapes (a one-token pass without the second row)
    toks = b.tokenize(_sources()[0][1])[:600]
    b.llm.eval(toks[:512])
    n0 = b.llm.n_tokens
    out: dict[int, list[float]] = {k: [] for k in ks}
    for _ in range(reps):
        for k in ks:  # interleaved: the machine's load drifts alike for every k
            b._rollback(n0)
            t0 = time.perf_counter()
            rows = b._decode(toks[512: 512 + k], all_logits=True)
            rows.argmax(axis=1)
            out[k].append((time.perf_counter() - t0) * 1000)
    b.close()
    return {k: statistics.median(v) for k, v in out.items()}


def tiny_costs(reps: int, cache: int = 800) -> dict[str, float]:
    """sc2-tiny's pass cost after a ``cache``-token prompt, on this thread's CPU clock (time another
    process took is not counted), as a ratio to a one-row pass: a lone token in a batch of two
    (the second row thrown away, no logits), and k tokens with logits for each (a verification)."""
    shapes = {"1 row": (1, False), "1+pad": (1, True), "k=2": (2, True), "k=3": (3, True), "k=4": (4, True),
              "k=6": (6, True), "k=8": (8, True)}
    b = LlamaCppBackend(TINY, LlamaSettings(n_threads=1, state_cache_mb=0, speculative=True))
    toks = b.tokenize(_sources()[0][1] + _sources()[1][1])[: cache + 8]
    for i in range(0, cache, 64):
        b._decode(toks[i: min(cache, i + 64)], all_logits=False)
    out: dict[str, float] = {k: 0.0 for k in shapes}
    for _ in range(reps):
        for name, (k, pad) in shapes.items():  # interleaved: the machine's load drifts alike
            b._pad = pad
            b._rollback(cache)
            t0 = time.thread_time()
            b._decode(toks[cache: cache + k], all_logits=k > 1).argmax(axis=1)
            out[name] += time.thread_time() - t0
    b.close()
    one = out["1 row"]
    return {"one_row_ms": round(one / reps * 1000, 3), **{k: round(v / one, 3) for k, v in out.items()}}


def graph_reuse(reps: int, cache: int = 800) -> dict[str, float]:
    """llama.cpp reuses a pass's graph when the pass before had the same shape (rows, rows with
    logits) and builds it again otherwise: sc2-tiny's pass cost (thread CPU time, after a
    ``cache``-token prompt) for each shape repeated and for two shapes alternating, as a ratio to
    a repeated one-row pass (the plain backend's every pass)."""
    import statistics

    b = LlamaCppBackend(TINY, LlamaSettings(n_threads=1, state_cache_mb=0, speculative=True))
    toks = b.tokenize(_sources()[0][1] + _sources()[1][1])[: cache + 8]
    for i in range(0, cache, 64):
        b._decode(toks[i: min(cache, i + 64)], all_logits=False)
    # (tokens, pad to 2 rows, logits for every row, logits for the pad row)
    shape = {"1 row": (1, False, False, False), "2 rows, 1 with logits": (1, True, False, False),
             "2 rows with logits": (2, True, True, False), "3 rows with logits": (3, True, True, False)}
    patterns = {"1 row": ["1 row"], "2 rows, 1 with logits": ["2 rows, 1 with logits"],
                "2 rows with logits": ["2 rows with logits"], "3 rows with logits": ["3 rows with logits"],
                "alternating 2 rows 1 / 2 logits": ["2 rows, 1 with logits", "2 rows with logits"],
                "alternating 2 / 3 rows": ["2 rows with logits", "3 rows with logits"]}
    out: dict[str, list[float]] = {k: [] for k in patterns}
    for _ in range(3):  # rounds: the machine's load drifts alike for every pattern
        for name, pat in patterns.items():
            for i in range(reps):
                k, pad, every, _ = shape[pat[i % len(pat)]]
                b._pad = pad
                b._rollback(cache)
                t0 = time.thread_time()
                b._decode(toks[cache: cache + k], all_logits=every)
                out[name].append(time.thread_time() - t0)
    b.close()
    med = {k: statistics.median(v) for k, v in out.items()}
    return {"one_row_ms": round(med["1 row"] * 1000, 3), **{k: round(v / med["1 row"], 3) for k, v in med.items()}}


def bound(items: list[dict], cost: dict[str, float], inloop: dict[str, float] | None = None) -> dict:
    """What drafting could give at best on sc2-tiny's cost curve: at each step of the greedy
    output, how many of the lookup's next 8 drafted tokens greedy decoding agrees with (L); an
    oracle drafts exactly L (one token where L = 0: the second row is there anyway), a fixed policy
    always d; each pass priced with ``cost`` (ratios to a one-row pass, the reference's)."""
    from sc2lsp.backends.speculative import History, PromptLookup

    b = LlamaCppBackend(TINY, LlamaSettings(n_threads=1, speculative=False, stable_rows=True))
    outs: list[list[int]] = []
    loop = b._loop

    def kept(run, *args):  # the generated token ids
        try:
            return loop(run, *args)
        finally:
            outs.append(list(run.out))
    b._loop = kept
    runs = []
    lookup_ns: list[int] = []  # the lookup's own time per step (Python, this thread)
    for p in items:
        hist = History()
        if "before" in p:
            before = prompt_of(p["before"])
            b.generate(before, max_tokens=8, stop=STOP_TOKENS)
            hist.add(b.tokenize(before) + outs[-1])
        prompt = prompt_of(p)
        b.generate(prompt, max_tokens=MAX_TOKENS, stop=STOP_TOKENS)
        out = outs[-1]
        n = len(out)
        lk = PromptLookup(b.tokenize(prompt), n + 1, hist)
        steps = []
        for i, tok in enumerate(out):
            lk.push(tok)
            t0 = time.perf_counter_ns()
            draft = lk.lookup(8)[0][: n - i - 1]
            lookup_ns.append(time.perf_counter_ns() - t0)
            agree = 0
            while agree < len(draft) and draft[agree] == out[i + 1 + agree]:
                agree += 1
            steps.append((agree, n - i - 1))
        runs.append(steps)
    b.close()
    ks = {1: cost["1+pad"], **{int(k[2:]): v for k, v in cost.items() if k.startswith("k=")}}

    def price(rows: int) -> float:
        return ks.get(rows) or ks[max(ks)] + (ks[max(ks)] - ks[2]) / (max(ks) - 2) * (rows - max(ks))

    def speed(choose) -> float:
        tokens = spent = 0.0
        for steps in runs:
            i = 0
            while i < len(steps):
                agree, left = steps[i]
                d = max(1, min(choose(agree), left)) if left else 0
                spent += price(d + 1)
                tokens += 1 + min(d, agree)
                i += 1 + min(d, agree)
        return round(tokens / spent, 3)
    res = {"oracle": speed(lambda agree: agree), **{f"always {d}": speed(lambda agree, d=d: d) for d in (1, 2, 3, 4, 8)},
           "lookup_us": round(sum(lookup_ns) / max(1, len(lookup_ns)) / 1000, 1)}
    if inloop is not None:  # the same replay priced with the in-loop curve (``loop_profile``)
        ks = {1: inloop["1+pad"], **{int(k[2:]): v for k, v in inloop.items() if k.startswith("k=")}}
        res["in-loop oracle"] = speed(lambda agree: agree)
        res.update({f"in-loop always {d}": speed(lambda agree, d=d: d) for d in (1, 2, 4)})
    return res


def exact_rows(model: Path, threads: int, cuts=(596, 570, 540)) -> dict:
    """Rows of a 4-token pass vs the same tokens one pass each, after a 600-token cache: how many
    logits rows differ at all, with the backend's 2-row passes and with plain 1-row passes."""
    import numpy as np

    b = LlamaCppBackend(model, LlamaSettings(n_threads=threads, state_cache_mb=0, speculative=True))
    toks = b.tokenize(_sources()[0][1])[:620]
    for i in range(0, 600, 64):
        b.llm.eval(toks[i: min(600, i + 64)])
    out = {}
    for pad in (True, False):
        b._pad = pad and threads > 1
        differ = 0
        for cut in cuts:  # descending: each rollback goes back
            b._rollback(cut)
            batch = b._decode(toks[cut: cut + 4], all_logits=True).copy()
            b._rollback(cut)
            single = np.stack([b._decode([t], all_logits=False)[0].copy() for t in toks[cut: cut + 4]])
            differ += int((np.abs(batch - single).max(axis=1) > 0).sum())
        out["two_row_passes" if pad else "one_row_passes"] = f"{differ}/{4 * len(cuts)} rows differ"
    b.close()
    return out


def cost_at(curve: dict[int, float], k: int) -> float:
    ks = sorted(curve)
    if k in curve:
        return curve[k]
    lo = max(x for x in ks if x <= k)
    hi = min((x for x in ks if x >= k), default=ks[-1])
    if hi == lo:
        return curve[lo] * k / lo
    return curve[lo] + (curve[hi] - curve[lo]) * (k - lo) / (hi - lo)


def expected_3b(items: list[dict], curve: dict[int, float], threads: int) -> dict:
    """Drafts of a policy priced with the 3B's curve, over the same positions on sc2-tiny."""
    one = curve[1]  # plain decoding: one row per pass (2+ rows only when speculating)
    slope = (curve[8] - curve[1]) / 7 / curve[1]
    b = LlamaCppBackend(TINY, LlamaSettings(n_threads=1, speculative=True))
    b.policy = DraftPolicy(max_draft=16, extra_cost=slope, adaptive=False)
    sizes: list[int] = []
    orig = b._pass

    def record(t, toks):
        sizes.append(len(toks))
        return orig(t, toks)

    b._pass = record
    all_sizes: list[int] = []
    tokens = drafted = accepted = 0
    for p in items:
        b.history.clear()
        if "before" in p:
            b.generate(prompt_of(p["before"]), max_tokens=8, stop=STOP_TOKENS)
        del sizes[:]
        g = b.generate(prompt_of(p), max_tokens=MAX_TOKENS, stop=STOP_TOKENS)
        all_sizes += sizes
        tokens += g.timings.generated_tokens
        drafted += g.timings.drafted
        accepted += g.timings.accepted
    b.close()
    spec_ms = sum(cost_at(curve, max(s, 2 if threads > 1 else 1)) for s in all_sizes)
    return {"extra_cost": round(slope, 3), "tokens": tokens, "passes": len(all_sizes),
            "acceptance": round(accepted / drafted, 3) if drafted else None,
            "tokens_per_pass": round(tokens / max(1, len(sizes)), 3),
            "expected_speedup": round(tokens * one / spec_ms, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--positions", type=int, default=20, help="positions per situation")
    ap.add_argument("--threads", type=int, default=1, help="sc2-tiny threads (its automatic choice is 1)")
    ap.add_argument("--reps", type=int, default=3, help="runs per position and backend (the fastest counts)")
    ap.add_argument("--cost-reps", type=int, default=300, help="passes per shape for sc2-tiny's cost curve")
    ap.add_argument("--profile-positions", type=int, default=6, help="positions per situation for the in-loop profile")
    ap.add_argument("--with-3b", action="store_true", help="the 3B-shaped GGUF's pass cost curve and expected speed-up")
    ap.add_argument("--threads-3b", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--reps-3b", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    out: dict = {"load_before": os.getloadavg(), "max_tokens": MAX_TOKENS, "threads": args.threads}
    sits = situations(args.positions)
    out["reps"] = args.reps
    out["tiny_pass_cost"] = tiny_costs(args.cost_reps)
    out["tiny_graph_reuse"] = graph_reuse(args.cost_reps)
    out["tiny"] = {name: run_situation(items, args.threads, args.reps) for name, items in sits.items()}
    from bench.speculative_loop import inloop_curve, loop_profile

    out["loop_profile"] = {name: loop_profile(items[: args.profile_positions]) for name, items in sits.items()}
    out["inloop_curve"] = inloop_curve(out["loop_profile"])
    out["bound"] = {name: bound(items, out["tiny_pass_cost"], out["inloop_curve"]) for name, items in sits.items()}
    if args.with_3b:
        from bench.convert_rss import CACHE

        gguf = CACHE / "starcoder2-3b-random-q4_k_m.gguf"
        if not gguf.exists():
            raise SystemExit(f"no 3B-shaped GGUF at {gguf}: run bench/convert_rss.py first")
        exact = exact_rows(gguf, args.threads_3b)
        curve = pass_costs(gguf, args.threads_3b, args.reps_3b)
        out["3b"] = {"gguf": str(gguf), "threads": args.threads_3b, "exact_rows": exact,
                     "pass_ms": {k: round(v, 1) for k, v in curve.items()},
                     "pass_cost_vs_1": {k: round(v / curve[1], 3) for k, v in curve.items()},
                     "expected": {name: expected_3b(items, curve, args.threads_3b) for name, items in sits.items()}}
    out["load_after"] = os.getloadavg()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(table(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def table(r: dict) -> str:
    rows = [("situation", "identical", "same as 1-row", "acceptance", "tok/pass", "spec tok/s", "stable tok/s",
             "plain tok/s", "spec/plain", "spec/stable", "stable/plain", "CPU: spec/plain", "spec/stable", "policy cost")]
    for name, s in r["tiny"].items():
        rows.append((name, f"{s['identical']}/{s['positions']}", f"{s['identical_1row']}/{s['positions']}",
                     str(s["acceptance"]), f"{s['tokens_per_pass']:.2f}", f"{s['spec_tok_s']:.0f}",
                     f"{s['stable_tok_s']:.0f}", f"{s['plain_tok_s']:.0f}", f"{s['speedup_vs_plain']:.3f}",
                     f"{s['speedup_vs_stable']:.3f}", f"{s['stable_vs_plain']:.3f}", f"{s['cpu_speedup_vs_plain']:.3f}",
                     f"{s['cpu_speedup_vs_stable']:.3f}", str(s["policy_extra_cost"])))
    w = [max(len(x[i]) for x in rows) for i in range(len(rows[0]))]
    lines = [f"sc2-tiny, {r['threads']} thread(s), {MAX_TOKENS} tokens max, fastest of {r.get('reps', 1)} runs"
             " (targets: editing >= 1.5x, plain >= 0.97x)"]
    lines += ["  ".join(c.ljust(w[i]) for i, c in enumerate(x)) for x in rows]
    lines.append("best possible speed-up on this cost curve (vs one-row plain), decode only: "
                 + "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in b.items() if k != "lookup_us")
                             for name, b in r["bound"].items()))
    lines.append("prompt lookup per step (us, replayed): " + ", ".join(
        f"{name} {b['lookup_us']}" for name, b in r["bound"].items() if "lookup_us" in b))
    if "loop_profile" in r:
        lines.append("in-loop profile (thread CPU, ms per pass: loop = llama_decode + other): " + "; ".join(
            f"{name}: " + ", ".join(f"{k} {p[k]['loop_ms_per_pass']} = {p[k]['decode_ms_per_pass']} + {p[k]['other_ms_per_pass']}"
                                    f" ({100 * p[k]['other_share']:.0f}%)" for k in ("spec", "plain"))
            for name, p in r["loop_profile"].items()))
        lines.append("in-loop speculative pass cost vs the plain one-row pass, by rows (passes): " + "; ".join(
            f"{name}: " + ", ".join(f"{rows}: {c['mean']} ({c['passes']})" for rows, c in p["spec_cost_by_rows"].items())
            + f"; fit {p['fit']['two_rows']} + {p['fit']['per_extra_row']} x (rows - 2)"
            for name, p in r["loop_profile"].items()))
        lines.append("in-loop curve (mean fit): " + ", ".join(f"{k} {v}" for k, v in r["inloop_curve"].items()))
    c = r["tiny_pass_cost"]
    lines.append(f"sc2-tiny pass cost after 800 tokens (thread CPU time, one row = {c['one_row_ms']} ms): "
                 + ", ".join(f"{k} {v}" for k, v in c.items() if k != "one_row_ms"))
    if "tiny_graph_reuse" in r:
        g = r["tiny_graph_reuse"]
        lines.append(f"sc2-tiny pass cost by shape, each repeated (graph reused) or alternating (built again each pass), "
                     f"thread CPU time vs a repeated one-row pass ({g['one_row_ms']} ms): "
                     + ", ".join(f"{k} {v}" for k, v in g.items() if k != "one_row_ms"))
    if "3b" in r:
        b = r["3b"]
        lines.append(f"\n3B-shaped Q4_K_M, {b['threads']} thread(s): pass ms over k tokens "
                     + ", ".join(f"k={k}: {v} ({b['pass_cost_vs_1'][k]}x)" for k, v in b["pass_ms"].items()))
        lines.append(f"  batched rows vs one-token passes: {b.get('exact_rows')}")
        for name, e in b["expected"].items():
            lines.append(f"  {name}: acceptance {e['acceptance']}, {e['tokens_per_pass']} tokens/pass -> expected 3B decode speed-up {e['expected_speedup']}x")
    lines.append(f"load {r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}, {r['seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
