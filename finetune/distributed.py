"""Multi-process pretraining with FSDP2 (``fully_shard`` per decoder layer, then the whole model).

Launched by ``torchrun``; ``python -m finetune pretrain`` comes here when ``WORLD_SIZE`` > 1::

    # one machine, 2 CPU processes (gloo) -- what the tests run
    torchrun --standalone --nproc_per_node 2 -m finetune pretrain --config finetune/configs/debug.toml
    # one machine, 8 GPUs (nccl)
    torchrun --standalone --nproc_per_node 8 -m finetune pretrain --config finetune/configs/sc2-tiny.toml
    # 4 machines x 8 GPUs: the same command on every node
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST0:29500 \\
        --rdzv_id sc2 -m finetune pretrain --config PRESET.toml

The schedule, data order, step loop and loss are ``pretrain.py``'s (``loop.run_steps`` with this
rank's share of each batch, ``pretrain.heldout_loss``): every optimizer step takes the same global batch of ``batch_size`` rows
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
from dataclasses import asdict
from pathlib import Path

from .config import ConfigError, PretrainConfig
from .loop import load_checkpoint, load_rows, run_steps, save_checkpoint, truncate_metrics
from .pretrain import adamw, build_pretrain_model, heldout_loss


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _shard(model) -> None:
    from torch.distributed.fsdp import fully_shard

    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)


def _collective_hooks(model, opt, out: Path, rank: int):
    """``run_steps``'s FSDP hooks: ``save`` (every rank gathers the full state, rank 0 writes it),
    ``reduce`` (sum of the loss over ranks), ``agree`` (rank 0's clock decides when to stop)."""
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    full = StateDictOptions(full_state_dict=True, cpu_offload=True)

    def save(step: int, tokens_seen: int) -> None:
        msd = get_model_state_dict(model, options=full)
        osd = get_optimizer_state_dict(model, opt, options=full)
        if rank == 0:
            save_checkpoint(out / "ckpt.pt", {"model": msd, "optimizer": osd, "step": step,
                                              "tokens_seen": tokens_seen, "torch_rng": torch.get_rng_state()})
        dist.barrier()

    def reduce(loss_sum):
        dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)
        return loss_sum

    def agree(out_of_time: bool) -> bool:
        flag = torch.tensor(float(out_of_time))
        dist.broadcast(flag, 0)  # rank 0's clock decides
        return bool(flag.item())

    return save, reduce, agree


def train(cfg: PretrainConfig) -> dict:
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
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
        train_rows, held_rows, vocab = load_rows(data, cfg.batch_size)
        if cfg.loss_mask and (data / "train_mask.npy").is_file():
            raise ConfigError(f"{data} has a loss mask (prepare samples=server), which the multi-process loop does "
                              "not apply yet: use `finetune pretrain`, or loss_mask=false to train on every token")
        out = Path(cfg.out)
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps({**asdict(cfg), "world_size": world}, indent=1))

        model = build_pretrain_model(cfg, vocab)
        n_params = sum(p.numel() for p in model.parameters())
        model.to(device)
        _shard(model)
        opt = adamw(model, cfg)
        full = StateDictOptions(full_state_dict=True, cpu_offload=True)
        step, tokens_seen = 0, 0
        state = load_checkpoint(out / "ckpt.pt")
        if state is not None:
            set_model_state_dict(model, state["model"], options=StateDictOptions(full_state_dict=True))
            set_optimizer_state_dict(model, opt, state["optimizer"], options=StateDictOptions(full_state_dict=True))
            step, tokens_seen = state["step"], state["tokens_seen"]
            if rank == 0:
                print(f"resumed from {out / 'ckpt.pt'} at step {step} ({world} processes)")
        if rank == 0:
            truncate_metrics(out / "metrics.jsonl", step)
            print(f"model {cfg.shape}: {n_params / 1e6:.2f}M parameters, FSDP2 over {world} processes "
                  f"({'nccl' if cuda else 'gloo'}); {len(train_rows)} train rows of {train_rows.shape[1]}")

        save, reduce, agree = _collective_hooks(model, opt, out, rank)

        # every rank runs the same held-out batches (FSDP forward passes are collective)
        step, tokens_seen = run_steps(
            cfg, model=model, opt=opt, params=list(model.parameters()), train_rows=train_rows, step=step,
            tokens_seen=tokens_seen, heldout=lambda n: heldout_loss(model, held_rows, cfg.batch_size, n, device),
            save=save, metrics=out / "metrics.jsonl", device=device, rank=rank, world=world, reduce=reduce,
            agree=agree, autocast=torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bfloat16"),
        )

        msd = get_model_state_dict(model, options=full)
        held = heldout_loss(model, held_rows, cfg.batch_size, 10**9, device)
        summary = {"step": step, "tokens_seen": tokens_seen, "parameters": n_params, "world_size": world,
                   "heldout_loss": round(held, 4)}
        if rank == 0:
            plain = build_pretrain_model(cfg, vocab)
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
