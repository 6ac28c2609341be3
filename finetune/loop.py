"""The training loop shared by ``pretrain.py`` (all weights, one process), ``train.py`` (LoRA) and
``distributed.py`` (FSDP2 under torchrun): schedule, data order, the step loop, metrics and checkpoints.

* ``lr_at``: linear warmup, then cosine down to ``lr * min_lr_ratio`` at ``max_steps``.
* ``RowSampler``: epoch e visits rows in ``permutation(seed + e)`` order, so a resumed run sees exactly
  the batches the killed run would have seen.
* ``load_rows``: ``DATA/train.npy``, ``DATA/heldout.npy`` and the tokenizer size, or one ``ConfigError``.
* ``load_checkpoint`` / ``save_checkpoint``: ``OUT/ckpt.pt`` through ``checkpoint.py`` (atomic rename);
  an unreadable checkpoint or a failed write (disk full) is one ``CheckpointError`` that says what to
  do, and the last good checkpoint is never touched.
* ``run_steps``: optimizer steps from ``step`` to ``max_steps`` (or ``max_minutes``): gradient
  accumulation, clipping, a ``metrics.jsonl`` row per step (loss, lr, grad norm, tokens; tokens/s every
  ``log_every``; held-out loss every ``eval_every`` and at the end), a checkpoint every ``save_every``.
  Under FSDP every rank calls it with its ``rank``/``world`` and takes its share of the same global
  batch; ``reduce`` averages the loss and ``agree`` makes every rank stop at the same step.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import checkpoint
from .config import ConfigError, LoopConfig


class CheckpointError(ValueError):
    """An unreadable checkpoint, or one that could not be written (the message says what to do)."""


def lr_at(step: int, cfg: LoopConfig) -> float:
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


def load_rows(data: str | Path, batch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(train_rows (memory-mapped), heldout_rows, vocab_size)`` of a ``prepare`` output directory."""
    data = Path(data)
    if not (data / "train.npy").is_file() or not (data / "manifest.json").is_file():
        raise ConfigError(f"{data}: no train.npy/manifest.json; run `python -m finetune prepare REPO --out {data}` "
                              "first")
    train_rows = np.load(data / "train.npy", mmap_mode="r")
    held = data / "heldout.npy"
    held_rows = np.load(held) if held.is_file() else np.zeros((0, train_rows.shape[1]), dtype=train_rows.dtype)
    vocab = json.loads((data / "manifest.json").read_text())["vocab_size"]
    if len(train_rows) < batch_size:
        raise ConfigError(f"{data}: {len(train_rows)} training rows < batch_size {batch_size}")
    return train_rows, held_rows, vocab


def load_masks(data: str | Path, train_rows: np.ndarray, held_rows: np.ndarray) -> tuple[Any, Any]:
    """``(train mask, held-out mask)``: ``DATA/train_mask.npy`` / ``heldout_mask.npy`` (1 = the token is
    in the loss; ``prepare samples=server`` writes them), each None when absent."""
    out = []
    for name, rows in (("train_mask.npy", train_rows), ("heldout_mask.npy", held_rows)):
        path = Path(data) / name
        mask = np.load(path, mmap_mode="r") if path.is_file() else None
        if mask is not None and mask.shape != rows.shape:
            raise ConfigError(f"{path}: shape {mask.shape} differs from its rows' {rows.shape}; prepare the data again")
        out.append(mask)
    return out[0], out[1]


def _labels(x, mask):
    """The labels of rows ``x``: the rows, with -100 (no loss) where ``mask`` is 0."""
    import torch

    if mask is None:
        return x
    return x.masked_fill(torch.from_numpy(np.asarray(mask, dtype=bool)).to(x.device).logical_not(), -100)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The state saved at ``path``, None if there is none, or a CheckpointError (the file is left alone)."""
    try:
        state = checkpoint.load(path)
    except Exception as e:  # truncated, foreign or damaged file
        raise CheckpointError(f"{path} cannot be read ({type(e).__name__}: {e}); move it away to start over") from None
    if state is not None and (not isinstance(state, dict) or "step" not in state):
        raise CheckpointError(f"{path} is not a training checkpoint of this program; move it away to start over")
    return state


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically; a failed write (disk full) leaves the previous checkpoint as it was."""
    try:
        checkpoint.save(path, state)  # removes its temporary file on any failure
    except Exception as e:  # OSError, and torch's RuntimeError for a full disk ("file write failed")
        kept = "the previous checkpoint is intact" if Path(path).exists() else "no checkpoint was written yet"
        why = getattr(e, "strerror", None) or f"{type(e).__name__}: {str(e)[:200]}"
        raise CheckpointError(f"cannot write the checkpoint {path} at step {state.get('step')} "
                              f"({why}); {kept}: free space and run the same command again to "
                              "continue from it") from None


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows past the checkpoint, so a resumed run continues one clean curve."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(r + "\n" for r in rows))


def append_metrics(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def run_steps(
    cfg: LoopConfig,
    *,
    model,
    opt,
    params: list,
    train_rows: np.ndarray,
    step: int,
    tokens_seen: int,
    heldout: Callable[[int], float],
    save: Callable[[int, int], None],
    metrics: Path,
    autocast,
    device: Any = "cpu",
    rank: int = 0,
    world: int = 1,
    reduce: Callable[[Any], Any] | None = None,
    agree: Callable[[bool], bool] | None = None,
    progress: bool = False,
    mask: np.ndarray | None = None,
) -> tuple[int, int]:
    """Train from ``step`` to ``cfg.max_steps`` (or ``cfg.max_minutes``); returns ``(step, tokens_seen)``.

    ``heldout(max_batches)`` is the held-out loss; ``save(step, tokens_seen)`` writes a checkpoint
    (called on every rank: FSDP gathers collectively). Only rank 0 writes ``metrics`` and prints.
    ``mask`` (rows like ``train_rows``, ``load_masks``): only the tokens where it is 1 are in the loss.
    """
    import torch

    writer = rank == 0
    sampler = RowSampler(len(train_rows), cfg.batch_size, cfg.seed)
    bar = None
    if progress and writer:
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step")
    t_start = t_log = time.time()
    tok_log = 0
    model.train()
    while step < cfg.max_steps:
        lr = lr_at(step, cfg)
        loss_val, gnorm, tokens = _optimizer_step(cfg, model, opt, params, train_rows, sampler.batch, step, lr,
                                                  autocast, device, rank, world, reduce, mask)
        tokens_seen += tokens
        tok_log += tokens
        step += 1
        row = {"step": step, "loss": round(loss_val, 4), "lr": lr, "grad_norm": round(gnorm, 3),
               "tokens": tokens_seen}
        now = time.time()
        tok_s = tok_log / max(now - t_log, 1e-9)
        if step % cfg.log_every == 0:
            row["tok_per_s"] = round(tok_s, 1)
            t_log, tok_log = now, 0
            if writer and bar is None:
                print(f"step {step}/{cfg.max_steps} loss {loss_val:.3f} lr {lr:.2e} {row['tok_per_s']} tok/s", flush=True)
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            row["heldout_loss"] = round(heldout(cfg.eval_batches), 4)
            if writer and bar is None:
                print(f"step {step}: held-out loss {row['heldout_loss']}", flush=True)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_val:.3f}", tok_s=f"{tok_s:.0f}",
                            **({"held": row["heldout_loss"]} if "heldout_loss" in row else {}))
        if writer:
            append_metrics(metrics, row)
        out_of_time = bool(cfg.max_minutes) and (time.time() - t_start) / 60 >= cfg.max_minutes
        if agree is not None:
            out_of_time = agree(out_of_time)  # every rank stops at the same step
        if step % cfg.save_every == 0 or step == cfg.max_steps or out_of_time:
            save(step, tokens_seen)
        if out_of_time:
            if writer:
                print(f"stopping at step {step}: max_minutes={cfg.max_minutes} reached")
            break
    if bar is not None:
        bar.close()
    return step, tokens_seen


def _optimizer_step(cfg: LoopConfig, model, opt, params: list, train_rows: np.ndarray, batch: Callable[[int], Any],
                    step: int, lr: float, autocast, device: Any, rank: int, world: int,
                    reduce: Callable[[Any], Any] | None, mask: np.ndarray | None = None) -> tuple[float, float, int]:
    """One optimizer step: ``grad_accum`` micro-batches of this rank's share of the global batch,
    clipping, the update. Returns (mean loss over all ranks, gradient norm, tokens of all ranks)."""
    import torch

    for g in opt.param_groups:
        g["lr"] = lr
    loss_sum = torch.zeros((), device=device)
    tokens = 0
    for micro in range(cfg.grad_accum):
        idx = np.sort(batch(step * cfg.grad_accum + micro))[rank::world]  # this rank's share
        x = torch.from_numpy(np.asarray(train_rows[idx], dtype=np.int64)).to(device)
        with autocast:
            labels = _labels(x, None if mask is None else mask[idx])
            loss = model(input_ids=x, labels=labels).loss / cfg.grad_accum
        loss.backward()
        loss_sum += loss.detach().float()
        tokens += x.numel() * world
    gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    gnorm = gnorm.full_tensor() if hasattr(gnorm, "full_tensor") else gnorm
    opt.step()
    opt.zero_grad(set_to_none=True)
    if reduce is not None:
        loss_sum = reduce(loss_sum)
    return loss_sum.item() / world, gnorm.item(), tokens


def heldout_loss(model, rows: np.ndarray, batch_size: int, max_batches: int, device="cpu", autocast=None,
                 mask: np.ndarray | None = None) -> float:
    """Mean next-token loss over the first ``max_batches`` batches (weighted by rows, so the batch size
    does not change the figure; with ``mask``, by the tokens in the loss). Under FSDP every rank must call
    it (forward passes are collective)."""
    import contextlib

    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad(), (autocast or contextlib.nullcontext()):
        for b in range(min(max_batches, math.ceil(len(rows) / batch_size))):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            x = torch.from_numpy(np.asarray(rows[sl], dtype=np.int64)).to(device)
            if mask is None:
                total += model(input_ids=x, labels=x).loss.float().item() * len(x)
                n += len(x)
                continue
            m = np.asarray(mask[sl], dtype=bool)
            weight = int(m[:, 1:].sum())  # the tokens HF's shifted loss counts
            if weight:
                total += model(input_ids=x, labels=_labels(x, m)).loss.float().item() * weight
                n += weight
    model.train()
    return total / n if n else float("nan")
