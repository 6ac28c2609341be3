"""llama.cpp weight repacking on and off: prompt and generation speed, load time and RSS.

llama.cpp may repack quantized weights into layouts for its CPU kernels (``use_extra_bufts``);
the repacked copy lives in anonymous memory next to the memory-mapped file. This measures, in
the same run and alternating the two settings (each load in a fresh child process so RSS is its
own): load time, RSS after the run (every weight page touched), prompt evaluation (pp, tokens/s over a cold prompt of
``--prompt-tokens``) and generation (tg, tokens/s over ``--gen-tokens`` greedy tokens).

    .venv/bin/python bench/repack.py [--model PATH] [--threads 1] [--rounds 2] [--json out.json]

Without ``--model`` it uses the random-weight StarCoder2-3B-shaped Q4_K_M GGUF of
``bench/convert_rss.py`` (built if missing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # before bench/ itself: bench/finetune.py would shadow the package
    sys.path.insert(0, str(ROOT))


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child(model: str, repack: bool, threads: int, prompt_tokens: int, gen_tokens: int) -> dict:
    from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings

    rss0 = _rss()
    t0 = time.perf_counter()
    b = LlamaCppBackend(model, LlamaSettings(n_threads=threads, n_ctx=prompt_tokens + gen_tokens + 64,
                                             state_cache_mb=0, repack=repack))
    load_s = time.perf_counter() - t0
    rss = _rss()
    text = (ROOT / "sc2lsp" / "engine.py").read_text()
    toks = b.tokenize(text)[:prompt_tokens]
    llm = b.llm
    t0 = time.perf_counter()
    for i in range(0, len(toks), b.settings.n_batch):
        llm.eval(toks[i:i + b.settings.n_batch])
    pp_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(gen_tokens):
        tok = llm.sample(temp=0.0)
        llm.eval([tok])
    tg_s = time.perf_counter() - t0
    # a keystroke's few new prompt tokens: one decode call of 3 tokens vs 3 one-token calls
    small = {}
    for how in ("batch", "single", "batch", "single"):
        llm.n_tokens = len(toks)
        llm._ctx.kv_cache_seq_rm(-1, len(toks), -1)
        t0 = time.perf_counter()
        if how == "batch":
            llm.eval(toks[:3])
        else:
            for tok in toks[:3]:
                llm.eval([tok])
        small.setdefault(how, []).append((time.perf_counter() - t0) * 1000)
    # after evaluating, every weight page has been touched: the mapped file counts in full
    return {"repack": repack, "load_s": round(load_s, 2), "rss_after_load_bytes": rss, "rss_bytes": _rss(),
            "rss_before_load_bytes": rss0,
            "pp_tokens": len(toks), "pp_tok_s": round(len(toks) / pp_s, 2),
            "tg_tokens": gen_tokens, "tg_tok_s": round(gen_tokens / tg_s, 2),
            "eval3_batch_ms": round(min(small["batch"]), 1), "eval3_single_ms": round(min(small["single"]), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=32)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        r = child(args.model, args.child == "on", args.threads, args.prompt_tokens, args.gen_tokens)
        print(json.dumps(r))
        return 0
    model = args.model
    if model is None:
        from bench.convert_rss import q4_k_m_gguf

        model = str(q4_k_m_gguf())
    runs = []
    for _ in range(args.rounds):
        for mode in ("on", "off"):
            cmd = [sys.executable, __file__, "--child", mode, "--model", model, "--threads", str(args.threads),
                   "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    size = Path(model).stat().st_size
    summary = {}
    for mode in (True, False):
        rs = [r for r in runs if r["repack"] is mode]
        summary["on" if mode else "off"] = {
            "pp_tok_s": round(statistics.median(r["pp_tok_s"] for r in rs), 2),
            "tg_tok_s": round(statistics.median(r["tg_tok_s"] for r in rs), 2),
            "load_s": round(statistics.median(r["load_s"] for r in rs), 2),
            "rss_over_file_mb": round((statistics.median(r["rss_bytes"] for r in rs) - size) / 2**20, 1),
        }
    on, off = summary["on"], summary["off"]
    result = {"model": model, "file_bytes": size, "threads": args.threads, "runs": runs, "summary": summary,
              "off_over_on": {"pp": round(off["pp_tok_s"] / on["pp_tok_s"], 3), "tg": round(off["tg_tok_s"] / on["tg_tok_s"], 3)}}
    rows = [("repack", "pp tok/s", "tg tok/s", "load s", "RSS - file MB")]
    rows += [(k, f"{v['pp_tok_s']:.2f}", f"{v['tg_tok_s']:.2f}", f"{v['load_s']:.1f}", f"{v['rss_over_file_mb']:.0f}") for k, v in summary.items()]
    rows.append(("off / on", f"{result['off_over_on']['pp']:.3f}", f"{result['off_over_on']['tg']:.3f}", "", ""))
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    print("\n".join("  ".join(x.ljust(n) for x, n in zip(r, w)) for r in rows))
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
