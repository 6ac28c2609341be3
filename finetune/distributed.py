"""Multi-process pretraining with FSDP2 (``fully_shard`` per decoder layer, then the whole model).

Launched by ``torchrun``; ``python -m finetune pretrain`` comes here when ``WORLD_SIZE`` > 1::

    # one machine, 2 CPU processes (gloo) -- what the tests run
    torchrun --standalone --nproc_per_node 2 -m finetune pretrain --config finetune/configs/debug.toml
    # one machine, 8 GPUs (nccl)
    torchrun --standalone --nproc_per_node 8 -m finetune pretrain --config finetune/configs/sc2-tiny.toml
    # 4 machines x 8 GPUs: the same command on every node
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST0:29500 \\
        --rdzv_id sc2 -m finetune pretrain --config PRESET.toml

The schedule, data order and loss follow ``pretrain.py`` exactly (its ``lr_at``, ``RowSampler``
and ``evaluate_loss``): every optimizer step takes the same global batch of ``batch_size`` rows
as the single-process run, each rank trains on its share of those rows, and FSDP averages the
gradients, so the loss curve matches the single-process one (tested with 2 CPU processes).
``batch_size`` must be divisible by the world size.

Checkpoints are gathered to full (unsharded) state dicts and written by rank 0 to ``OUT/ckpt.pt``
atomically (model, optimizer, step, RNG, as in ``pretrain.py``; the optimizer state is keyed by
parameter name): a run killed at any point and launched again continues the same curve (tested
with 2 processes).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import checkpoint
from .config import ConfigError, PretrainConfig
from .model import build_model
from .pretrain import RowSampler, _truncate_metrics, evaluate_loss, lr_at


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _shard(model) -> None:
    from torch.distributed.fsdp import fully_shard

    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)


def train(cfg: PretrainConfig) -> dict:
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    cuda = torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    device = torch.device("cuda") if cuda else torch.device("cpu")
    try:
        if cfg.batch_size % world:
            raise ConfigError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        data = Path(cfg.data)
        train_rows = np.load(data / "train.npy", mmap_mode="r")
        held_rows = np.load(data / "heldout.npy")
        vocab = json.loads((data / "manifest.json").read_text())["vocab_size"]
        out = Path(cfg.out)
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps({**asdict(cfg), "world_size": world}, indent=1))

        if cfg.init_from:
            from transformers import Starcoder2ForCausalLM

            model = Starcoder2ForCausalLM.from_pretrained(cfg.init_from, dtype=torch.float32)
        else:
            model = build_model(cfg.shape, vocab, seed=cfg.seed)
        n_params = sum(p.numel() for p in model.parameters())
        model.to(device)
        _shard(model)
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
        )
        full = StateDictOptions(full_state_dict=True, cpu_offload=True)
        step, tokens_seen = 0, 0
        state = checkpoint.load(out / "ckpt.pt")
        if state is not None:
            set_model_state_dict(model, state["model"], options=StateDictOptions(full_state_dict=True))
            set_optimizer_state_dict(model, opt, state["optimizer"], options=StateDictOptions(full_state_dict=True))
            step, tokens_seen = state["step"], state["tokens_seen"]
            if rank == 0:
                print(f"resumed from {out / 'ckpt.pt'} at step {step} ({world} processes)")
        if rank == 0:
            _truncate_metrics(out / "metrics.jsonl", step)
            print(f"model {cfg.shape}: {n_params / 1e6:.2f}M parameters, FSDP2 over {world} processes "
                  f"({'nccl' if cuda else 'gloo'}); {len(train_rows)} train rows of {train_rows.shape[1]}")

        def save() -> None:
            msd = get_model_state_dict(model, options=full)
            osd = get_optimizer_state_dict(model, opt, options=full)
            if rank == 0:
                checkpoint.save(out / "ckpt.pt", {"model": msd, "optimizer": osd, "step": step,
                                                  "tokens_seen": tokens_seen, "torch_rng": torch.get_rng_state()})
            dist.barrier()

        sampler = RowSampler(len(train_rows), cfg.batch_size, cfg.seed)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bfloat16")
        t_start = t_log = time.time()
        tok_log = 0
        model.train()
        while step < cfg.max_steps:
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                idx = np.sort(sampler.batch(step * cfg.grad_accum + micro))
                mine = idx[rank::world]  # this rank's share of the same global batch
                x = torch.from_numpy(np.asarray(train_rows[mine], dtype=np.int64)).to(device)
                with autocast:
                    loss = model(input_ids=x, labels=x).loss / cfg.grad_accum
                loss.backward()
                loss_sum += loss.detach()
                tokens_seen += x.numel() * world
                tok_log += x.numel() * world
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            gnorm = gnorm.full_tensor() if hasattr(gnorm, "full_tensor") else gnorm
            opt.step()
            opt.zero_grad(set_to_none=True)
            dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)
            loss_val = loss_sum.item() / world
            step += 1
            row = {"step": step, "loss": round(loss_val, 4), "lr": lr, "grad_norm": round(gnorm.item(), 3),
                   "tokens": tokens_seen}
            if step % cfg.log_every == 0:
                now = time.time()
                row["tok_per_s"] = round(tok_log / (now - t_log), 1)
                t_log, tok_log = now, 0
                if rank == 0:
                    print(f"step {step}/{cfg.max_steps} loss {loss_val:.3f} lr {lr:.2e} {row['tok_per_s']} tok/s",
                          flush=True)
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                row["heldout_loss"] = round(_heldout(model, held_rows, cfg, device), 4)
            if rank == 0:
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
            out_of_time = torch.tensor(float(bool(cfg.max_minutes) and (time.time() - t_start) / 60 >= cfg.max_minutes))
            dist.broadcast(out_of_time, 0)  # every rank stops at the same step
            if step % cfg.save_every == 0 or step == cfg.max_steps or out_of_time.item():
                save()
            if out_of_time.item():
                break

        msd = get_model_state_dict(model, options=full)
        held = _heldout(model, held_rows, cfg, device, max_batches=10**9)
        summary = {"step": step, "tokens_seen": tokens_seen, "parameters": n_params, "world_size": world,
                   "heldout_loss": round(held, 4)}
        if rank == 0:
            plain = build_model(cfg.shape, vocab) if not cfg.init_from else _load_plain(cfg.init_from)
            plain.load_state_dict(msd)
            plain.save_pretrained(out / "hf", safe_serialization=True)
            from transformers import PreTrainedTokenizerFast

            PreTrainedTokenizerFast.from_pretrained(str(data / "tokenizer")).save_pretrained(out / "hf")
            (out / "summary.json").write_text(json.dumps(summary, indent=1))
            print(f"saved {out / 'hf'}; {summary}")
        dist.barrier()
        return summary
    finally:
        dist.destroy_process_group()


def _load_plain(path: str):
    import torch
    from transformers import Starcoder2ForCausalLM

    return Starcoder2ForCausalLM.from_pretrained(path, dtype=torch.float32)


def _heldout(model, rows: np.ndarray, cfg: PretrainConfig, device, max_batches: int | None = None) -> float:
    """Held-out loss; every rank runs the same batches (FSDP forward passes are collective)."""
    if device.type == "cpu":
        return evaluate_loss(model, rows, cfg.batch_size, max_batches or cfg.eval_batches)
    import torch

    model.eval()
    losses = []
    with torch.no_grad():
        n = min(max_batches or cfg.eval_batches, -(-len(rows) // cfg.batch_size))
        for b in range(n):
            x = torch.from_numpy(rows[b * cfg.batch_size : (b + 1) * cfg.batch_size].astype(np.int64)).to(device)
            losses.append(model(input_ids=x, labels=x).loss.item())
    model.train()
    return float(np.mean(losses)) if losses else float("nan")
