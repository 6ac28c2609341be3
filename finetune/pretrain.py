"""Train all weights of a Starcoder2 model on packed token rows (single process).

Resumable: ``OUT/ckpt.pt`` holds model, optimizer, step and RNG state, written atomically
every ``save_every`` steps; metrics go to ``OUT/metrics.jsonl``. The row order is a function of
(seed, epoch), so a resumed run sees exactly the batches the killed run would have seen. The step
loop, schedule, sampler and checkpoint handling are ``loop.py``'s (shared with ``train.py`` and
``distributed.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .config import ConfigError, PretrainConfig
from .loop import (  # noqa: F401  (lr_at, RowSampler, heldout_loss: public names here before loop.py)
    RowSampler,
    append_metrics,
    heldout_loss,
    load_checkpoint,
    load_masks,
    load_rows,
    lr_at,
    run_steps,
    save_checkpoint,
    truncate_metrics,
)
from .model import build_model


def build_pretrain_model(cfg: PretrainConfig, vocab: int):
    """A fresh model of ``cfg.shape``, or the checkpoint ``cfg.init_from`` (which must be Starcoder2)."""
    if not cfg.init_from:
        return build_model(cfg.shape, vocab, seed=cfg.seed)
    import torch
    from transformers import Starcoder2ForCausalLM

    from .model import check_base

    base_cfg = check_base(cfg.init_from)
    if base_cfg.get("vocab_size") != vocab:
        raise ConfigError(f"data tokenizer has {vocab} tokens but {cfg.init_from} has {base_cfg.get('vocab_size')}: "
                          f"prepare the data with --tokenizer {cfg.init_from}")
    return Starcoder2ForCausalLM.from_pretrained(cfg.init_from, dtype=torch.float32)


def adamw(model, cfg: PretrainConfig):
    """AdamW with weight decay on matrices only (not on biases, norms)."""
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
    )


def train(cfg: PretrainConfig) -> dict:
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = Path(cfg.data)
    train_rows, held_rows, vocab = load_rows(data, cfg.batch_size)
    train_mask, held_mask = load_masks(data, train_rows, held_rows) if cfg.loss_mask else (None, None)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    model = build_pretrain_model(cfg, vocab)
    opt = adamw(model, cfg)
    step, tokens_seen = 0, 0
    state = load_checkpoint(out / "ckpt.pt")
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, tokens_seen = state["step"], state["tokens_seen"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed from {out / 'ckpt.pt'} at step {step}")
    truncate_metrics(out / "metrics.jsonl", step)
    if step == 0 and cfg.init_from:  # the starting checkpoint's held-out loss, as LoRA runs log it
        (out / "metrics.jsonl").unlink(missing_ok=True)
        base_loss = heldout_loss(model, held_rows, cfg.batch_size, 10**9, mask=held_mask)
        append_metrics(out / "metrics.jsonl", {"step": 0, "heldout_loss": round(base_loss, 4), "tokens": 0})
        print(f"{cfg.init_from}: held-out loss {base_loss:.4f}")

    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {cfg.shape}: {n_params / 1e6:.2f}M parameters; {len(train_rows)} train rows of {train_rows.shape[1]}")

    def save(step: int, tokens_seen: int) -> None:
        save_checkpoint(out / "ckpt.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                          "tokens_seen": tokens_seen, "torch_rng": torch.get_rng_state()})

    step, tokens_seen = run_steps(
        cfg, model=model, opt=opt, params=list(model.parameters()), train_rows=train_rows, step=step,
        tokens_seen=tokens_seen, heldout=lambda n: heldout_loss(model, held_rows, cfg.batch_size, n, mask=held_mask),
        save=save, metrics=out / "metrics.jsonl", mask=train_mask,
        autocast=torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.dtype == "bfloat16"),
    )

    final = out / "hf"
    model.save_pretrained(final, safe_serialization=True)
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast.from_pretrained(str(data / "tokenizer")).save_pretrained(final)
    held = heldout_loss(model, held_rows, cfg.batch_size, 10**9, mask=held_mask)
    summary = {"step": step, "tokens_seen": tokens_seen, "parameters": n_params, "heldout_loss": round(held, 4)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"saved {final}; {summary}")
    return summary
