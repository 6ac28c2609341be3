"""Fine-tuning figures: prepare throughput, LoRA training tokens/s against a plain transformers + peft
loop on the same batches, peak RSS. Figures, not pass/fail.

    python bench/finetune.py [REPO] [--base HF_DIR] [--steps 12] [--json]

REPO defaults to a copy of the installed ``huggingface_hub`` package; BASE defaults to
``models/sc2-tiny/hf`` (a random model of the sc2-tiny shape is built when it is missing).
Each measurement runs in its own process so peak RSS is per step of the workflow.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLAIN_LOOP = r"""
import json, sys, time
import numpy as np, torch
from peft import LoraConfig, get_peft_model
from transformers import Starcoder2ForCausalLM
from finetune.loop import RowSampler
base, data, steps, bs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
rows = np.load(f"{data}/train.npy", mmap_mode="r")
model = get_peft_model(Starcoder2ForCausalLM.from_pretrained(base, dtype=torch.float32),
    LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, bias="none", task_type="CAUSAL_LM",
               target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"]))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
sampler = RowSampler(len(rows), bs, 0)
model.train()
t0 = None
tokens = 0
for step in range(steps):
    if step == 2:
        t0, tokens = time.perf_counter(), 0  # skip warm-up steps
    x = torch.from_numpy(np.asarray(rows[np.sort(sampler.batch(step))], dtype=np.int64))
    loss = model(input_ids=x, labels=x).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); opt.zero_grad(set_to_none=True)
    tokens += x.numel()
print(json.dumps({"tok_per_s": tokens / (time.perf_counter() - t0)}))
"""


def _child(cmd: list[str], env: dict | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``cmd``; returns the result, wall seconds and the child's peak RSS in MB."""
    t0 = time.time()
    pid = os.fork()
    if pid == 0:  # a fresh child per measurement, so ru_maxrss of the wait is this command's
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
        with open(os.environ["_BENCH_OUT"], "w") as f:
            json.dump({"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr[-3000:]}, f)
        os._exit(0)
    _, status, usage = os.wait4(pid, 0)
    out = json.loads(Path(os.environ["_BENCH_OUT"]).read_text())
    r = subprocess.CompletedProcess(cmd, out["rc"], out["stdout"], out["stderr"])
    if r.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return r, time.time() - t0, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo", nargs="?")
    ap.add_argument("--base", default=str(ROOT / "models" / "sc2-tiny" / "hf"))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="alternating measurements of each loop (best kept)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    os.environ["_BENCH_OUT"] = str(tmp / "child.json")
    try:
        repo = Path(args.repo) if args.repo else None
        if repo is None:
            import huggingface_hub

            repo = tmp / "huggingface_hub"
            shutil.copytree(Path(huggingface_hub.__file__).parent, repo, ignore=shutil.ignore_patterns("__pycache__"))
        base = Path(args.base)
        if not (base / "model.safetensors").is_file():
            subprocess.run([py, "-c", (
                "import sys; from finetune.model import build_model; from finetune.tokenizer import load;"
                "t = load(sys.argv[2]); m = build_model('sc2-tiny', len(t)); m.save_pretrained(sys.argv[1]);"
                "t.save_pretrained(sys.argv[1])"), str(tmp / "base"), str(ROOT / "runs" / "stdlib-data" / "tokenizer")],
                check=True, cwd=ROOT, capture_output=True)
            base = tmp / "base"
        data = tmp / "data"
        r, secs, rss = _child([py, "-m", "finetune", "prepare", str(repo), "--out", str(data), "--tokenizer", str(base),
                               "--no-progress", "epochs=1"])
        m = json.loads((data / "manifest.json").read_text())
        prep = {"files": len(m["files"]), "kept": m["kept_files"], "mb": round(m["bytes_read"] / 1e6, 2),
                "seconds": m["seconds"], "mb_per_s": round(m["bytes_read"] / 1e6 / m["seconds"], 2),
                "peak_rss_mb": round(rss)}

        def ours() -> tuple[float, float]:
            run = tmp / "run"
            shutil.rmtree(run, ignore_errors=True)
            _, _, rss = _child([py, "-m", "finetune", "train", "--config",
                                str(ROOT / "finetune" / "configs" / "lora-sc2-tiny.toml"), f"base={base}", f"data={data}",
                                f"out={run}", f"max_steps={args.steps}", "max_minutes=0", f"batch_size={args.batch_size}",
                                "eval_every=1000000", "log_every=1", "save_every=1000000", f"threads={args.threads}",
                                "progress=false", "plot=false"])
            rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
            # steps 1-2 warm up; the last step also evaluates held-out loss
            timed = [x["tok_per_s"] for x in rows if 2 < x.get("step", 0) < args.steps and "tok_per_s" in x]
            return len(timed) / sum(1 / t for t in timed), rss  # tokens per step are equal: harmonic mean

        def plain() -> tuple[float, float]:
            r, _, rss = _child([py, "-c", PLAIN_LOOP, str(base), str(data), str(args.steps), str(args.batch_size),
                                str(args.threads)], env={"PYTHONPATH": str(ROOT)})
            return json.loads(r.stdout.strip().splitlines()[-1])["tok_per_s"], rss

        # alternate and keep the best of each: other load on the machine hits both alike
        runs = [(ours(), plain()) for _ in range(args.repeat)]
        ours_tps, rss_ours = max(o for o, _ in runs)
        plain_tps, rss_plain = max(p for _, p in runs)
        train = {"steps": args.steps, "batch": f"{args.batch_size}x{m['seq_len']}", "threads": args.threads,
                 "finetune_tok_per_s": round(ours_tps, 1), "plain_peft_tok_per_s": round(plain_tps, 1),
                 "ratio": round(ours_tps / plain_tps, 3), "finetune_peak_rss_mb": round(rss_ours),
                 "plain_peak_rss_mb": round(rss_plain)}
        result = {"repo": str(args.repo or "huggingface_hub (installed copy)"), "base": str(args.base),
                  "prepare": prep, "train": train}
        if args.json:
            print(json.dumps(result, indent=1))
        else:
            print(f"prepare: {prep['kept']}/{prep['files']} files, {prep['mb']} MB in {prep['seconds']} s = "
                  f"{prep['mb_per_s']} MB/s, peak RSS {prep['peak_rss_mb']} MB")
            print(f"train:   finetune {train['finetune_tok_per_s']} tok/s vs plain transformers+peft "
                  f"{train['plain_peft_tok_per_s']} tok/s (ratio {train['ratio']}); peak RSS "
                  f"{train['finetune_peak_rss_mb']} MB vs {train['plain_peak_rss_mb']} MB")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
