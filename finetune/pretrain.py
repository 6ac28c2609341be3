"""Train all weights of a Starcoder2 model on packed token rows (single process).

Resumable: ``OUT/ckpt.pt`` holds model, optimizer, step and RNG state, written atomically
every ``save_every`` steps; metrics go to ``OUT/metrics.jsonl``. The row order is a function of
(seed, epoch), so a resumed run sees exactly the batches the killed run would have seen.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import checkpoint
from .config import PretrainConfig
from .model import build_model


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine down to ``lr * min_lr_ratio`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class RowSampler:
    """Deterministic batches: epoch e visits rows in ``permutation(seed + e)`` order."""

    def __init__(self, n_rows: int, batch_size: int, seed: int):
        self.n, self.bs, self.seed = n_rows, batch_size, seed
        self._epoch, self._perm = -1, None

    def batch(self, index: int) -> np.ndarray:
        per_epoch = self.n // self.bs
        epoch, i = divmod(index, per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng(self.seed + epoch).permutation(self.n)
        return self._perm[i * self.bs : (i + 1) * self.bs]


def evaluate_loss(model, rows: np.ndarray, batch_size: int, max_batches: int) -> float:
    import torch

    model.eval()
    losses = []
    with torch.no_grad():
        for b in range(min(max_batches, math.ceil(len(rows) / batch_size))):
            x = torch.from_numpy(rows[b * batch_size : (b + 1) * batch_size].astype(np.int64))
            losses.append(model(input_ids=x, labels=x).loss.item())
    model.train()
    return float(np.mean(losses)) if losses else float("nan")


def train(cfg: PretrainConfig) -> dict:
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = Path(cfg.data)
    train_rows = np.load(data / "train.npy", mmap_mode="r")
    held_rows = np.load(data / "heldout.npy")
    vocab = json.loads((data / "manifest.json").read_text())["vocab_size"]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    if cfg.init_from:
        from transformers import Starcoder2ForCausalLM

        model = Starcoder2ForCausalLM.from_pretrained(cfg.init_from, dtype=torch.float32)
    else:
        model = build_model(cfg.shape, vocab, seed=cfg.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
    )
    step, tokens_seen = 0, 0
    state = checkpoint.load(out / "ckpt.pt")
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, tokens_seen = state["step"], state["tokens_seen"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed from {out / 'ckpt.pt'} at step {step}")
    _truncate_metrics(out / "metrics.jsonl", step)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {cfg.shape}: {n_params / 1e6:.2f}M parameters; {len(train_rows)} train rows of {train_rows.shape[1]}")
    sampler = RowSampler(len(train_rows), cfg.batch_size, cfg.seed)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.dtype == "bfloat16")
    t_start = time.time()
    t_log, tok_log = time.time(), 0
    model.train()

    def save() -> None:
        checkpoint.save(out / "ckpt.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                          "tokens_seen": tokens_seen, "torch_rng": torch.get_rng_state()})

    while step < cfg.max_steps:
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = 0.0
        for micro in range(cfg.grad_accum):
            idx = sampler.batch(step * cfg.grad_accum + micro)
            x = torch.from_numpy(np.asarray(train_rows[np.sort(idx)], dtype=np.int64))
            with autocast:
                loss = model(input_ids=x, labels=x).loss / cfg.grad_accum
            loss.backward()
            loss_sum += loss.item()
            tokens_seen += x.numel()
            tok_log += x.numel()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip).item()
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        row = {"step": step, "loss": round(loss_sum, 4), "lr": lr, "grad_norm": round(gnorm, 3), "tokens": tokens_seen}
        if step % cfg.log_every == 0:
            now = time.time()
            row["tok_per_s"] = round(tok_log / (now - t_log), 1)
            t_log, tok_log = now, 0
            print(f"step {step}/{cfg.max_steps} loss {loss_sum:.3f} lr {lr:.2e} {row['tok_per_s']} tok/s", flush=True)
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            row["heldout_loss"] = round(evaluate_loss(model, held_rows, cfg.batch_size, cfg.eval_batches), 4)
            print(f"step {step}: held-out loss {row['heldout_loss']}", flush=True)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        out_of_time = cfg.max_minutes and (time.time() - t_start) / 60 >= cfg.max_minutes
        if step % cfg.save_every == 0 or step == cfg.max_steps or out_of_time:
            save()
        if out_of_time:
            print(f"stopping at step {step}: max_minutes={cfg.max_minutes} reached")
            break

    final = out / "hf"
    model.save_pretrained(final, safe_serialization=True)
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast.from_pretrained(str(data / "tokenizer")).save_pretrained(final)
    held = evaluate_loss(model, held_rows, cfg.batch_size, 10**9)
    summary = {"step": step, "tokens_seen": tokens_seen, "parameters": n_params, "heldout_loss": round(held, 4)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"saved {final}; {summary}")
    return summary


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows past the checkpoint, so a resumed run continues one clean curve."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(r + "\n" for r in rows))
