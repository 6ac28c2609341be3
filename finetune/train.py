"""``python -m finetune train --config PRESET.toml``: LoRA fine-tuning of a Starcoder2 checkpoint (peft).

Reads the packed rows of ``finetune prepare`` (``DATA/train.npy``, ``DATA/heldout.npy``), wraps
the base model with LoRA on ``q_proj k_proj v_proj o_proj c_fc c_proj`` (StarCoder2 has no
``gate_proj/up_proj/down_proj``; peft would ignore those silently, so unknown targets are an
error here), and trains with AdamW, warmup + cosine (``loop.lr_at``; the step loop is ``loop.run_steps``), gradient accumulation
and clipping. bf16 autocast is used where the device supports it (``dtype = "auto"``).

Writes ``OUT/ckpt.pt`` (LoRA weights, optimizer, step, RNG; atomic, every ``save_every`` steps:
a run killed at any point resumes on the same loss curve), ``OUT/metrics.jsonl`` (step 0 holds
the base model's held-out loss), ``OUT/loss.png``, and at the end ``OUT/adapter/`` (PEFT adapter
+ tokenizer) and ``OUT/summary.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .loop import (  # noqa: I001
    append_metrics,
    load_checkpoint,
    load_masks,
    load_rows,
    run_steps,
    save_checkpoint,
    truncate_metrics,
)
from .config import LoopConfig, TrainError
from .loop import heldout_loss  # noqa: F401  (re-exported: the tests use train.heldout_loss)
from .model import STARCODER2_TARGETS, check_base  # noqa: F401  (re-exported)
from .paths import project_path, user_run


@dataclass
class LoraTrainConfig(LoopConfig):
    """LoRA fine-tuning of a base checkpoint on a prepared repository (loop fields: ``LoopConfig``)."""

    base: str = str(project_path("models/sc2-tiny/hf"))  #: HF checkpoint directory of a Starcoder2ForCausalLM
    r: int = 16  #: LoRA rank
    alpha: float = 32.0  #: LoRA scaling numerator (scale = alpha / r)
    dropout: float = 0.05  #: dropout on the LoRA input
    targets: str = ",".join(STARCODER2_TARGETS)  #: comma-separated module names to adapt
    plot: bool = True  #: write OUT/loss.png (needs matplotlib)
    progress: bool = True  #: a progress bar with tokens/s
    # LoopConfig fields with other defaults for LoRA
    data: str = user_run("repo-data")  #: directory written by ``finetune prepare`` (default: the user's cache)
    out: str = user_run("lora")  #: checkpoints, metrics, plot and the adapter go here
    lr: float = 1e-3
    warmup_steps: int = 20
    max_steps: int = 300
    weight_decay: float = 0.0
    beta2: float = 0.999
    eval_every: int = 50
    eval_batches: int = 8  # the final evaluation uses all held-out rows
    save_every: int = 25
    dtype: str = "auto"  #: auto (bf16 on a GPU that supports it, else float32), float32, bfloat16

    error = TrainError
    dtypes = ("auto", "float32", "bfloat16")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.r < 1:
            raise TrainError("r must be >= 1")
        unknown = [t for t in self.target_modules if t not in STARCODER2_TARGETS]
        if unknown:
            raise TrainError(f"LoRA target {unknown[0]!r} is not a Starcoder2 module; use some of "
                             f"{', '.join(STARCODER2_TARGETS)}")

    @property
    def target_modules(self) -> list[str]:
        return [t.strip() for t in self.targets.split(",") if t.strip()]


def resolve_base(spec: str | Path) -> Path:
    """A checkpoint directory, or a models.toml name (``sc2-tiny``, ``starcoder2-3b``): its
    ``hf_checkpoint`` (a local directory, or the ``hf_repo`` checkpoint pulled into the HF cache)."""
    p = Path(spec).expanduser()
    if p.is_dir() or "/" in str(spec) or not str(spec):
        return p
    from sc2lsp.errors import UserError
    from sc2lsp.models.registry import hf_checkpoint

    try:
        return hf_checkpoint(str(spec))
    except UserError as e:
        raise TrainError(str(e)) from None


def load_lora_model(base: str | Path, cfg: LoraTrainConfig | None = None, adapter: str | Path | None = None):
    """The base model wrapped with fresh LoRA layers (``cfg``) or a saved adapter (``adapter``)."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import Starcoder2ForCausalLM

    check_base(base)
    model = Starcoder2ForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    if adapter is not None:
        return PeftModel.from_pretrained(model, str(adapter))
    lcfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules,
                      bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lcfg)
    found = {n.rsplit(".", 1)[-1] for n, _ in peft_model.named_modules() if n.endswith(tuple(cfg.target_modules))}
    if set(cfg.target_modules) - found:
        raise TrainError(f"LoRA targets not found in the model: {sorted(set(cfg.target_modules) - found)}")
    return peft_model


def _resolve_dtype(cfg: LoraTrainConfig, device: str):
    import torch

    if cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and device == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.autocast(device, dtype=torch.bfloat16), "bfloat16"
    return torch.autocast(device, enabled=False), "float32"


def train(cfg: LoraTrainConfig) -> dict:
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = Path(cfg.data)
    cfg.base = str(resolve_base(cfg.base))
    base_cfg = check_base(cfg.base)
    train_rows, held_rows, vocab = load_rows(data, cfg.batch_size)
    train_mask, held_mask = load_masks(data, train_rows, held_rows) if cfg.loss_mask else (None, None)
    if vocab != base_cfg.get("vocab_size"):
        raise TrainError(f"data tokenizer has {vocab} tokens but the base model {cfg.base} has "
                         f"{base_cfg.get('vocab_size')}: prepare the data with --tokenizer {cfg.base}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    device = "cuda" if torch.cuda.is_available() else "cpu"

    torch.manual_seed(cfg.seed)
    model = load_lora_model(cfg.base, cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    n_train, n_total = sum(p.numel() for p in params), sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    autocast, dtype_name = _resolve_dtype(cfg, device)

    step, tokens_seen = 0, 0
    ckpt = out / "ckpt.pt"
    state = load_checkpoint(ckpt)
    if state is not None:
        missing = model.load_state_dict(state["lora"], strict=False).unexpected_keys
        if missing or set(state["lora"]) != {n for n, p in model.named_parameters() if p.requires_grad}:
            raise TrainError(f"{ckpt} was written by a run with other LoRA settings; use another out= or move it away")
        opt.load_state_dict(state["optimizer"])
        step, tokens_seen = state["step"], state["tokens_seen"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed from {ckpt} at step {step}")
    else:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    truncate_metrics(out / "metrics.jsonl", step)
    if step == 0:
        base_loss = heldout_loss(model, held_rows, cfg.batch_size, 10**9, device, autocast, held_mask)
        append_metrics(out / "metrics.jsonl", {"step": 0, "heldout_loss": round(base_loss, 4), "tokens": 0})
        print(f"base model held-out loss {base_loss:.4f}")
    print(f"LoRA r={cfg.r} on {', '.join(cfg.target_modules)}: {n_train / 1e3:.1f}k trainable of "
          f"{n_total / 1e6:.2f}M parameters; {len(train_rows)} rows of {train_rows.shape[1]}; {device} {dtype_name}")

    def save(step: int, tokens_seen: int) -> None:
        lora = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
        save_checkpoint(ckpt, {"lora": lora, "optimizer": opt.state_dict(), "step": step, "tokens_seen": tokens_seen,
                               "torch_rng": torch.get_rng_state()})

    step, tokens_seen = run_steps(
        cfg, model=model, opt=opt, params=params, train_rows=train_rows, step=step, tokens_seen=tokens_seen,
        heldout=lambda n: heldout_loss(model, held_rows, cfg.batch_size, n, device, autocast, held_mask), save=save,
        metrics=out / "metrics.jsonl", autocast=autocast, device=device, progress=cfg.progress, mask=train_mask,
    )

    adapter = out / "adapter"
    model.save_pretrained(str(adapter))
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast.from_pretrained(str(data / "tokenizer")).save_pretrained(str(adapter))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    final = heldout_loss(model, held_rows, cfg.batch_size, 10**9, device, autocast, held_mask)
    summary = {
        "base": str(cfg.base), "data": str(cfg.data), "step": step, "tokens_seen": tokens_seen,
        "trainable_parameters": n_train, "parameters": n_total, "dtype": dtype_name,
        "base_heldout_loss": next((r["heldout_loss"] for r in rows if r["step"] == 0), None),
        "heldout_loss": round(final, 4), "adapter": str(adapter),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if cfg.plot:
        plot_losses(rows, out / "loss.png", title=f"LoRA r={cfg.r} on {Path(cfg.base).name}")
    print(f"saved {adapter}; held-out loss {summary['base_heldout_loss']} -> {summary['heldout_loss']}")
    return summary


def plot_losses(rows: list[dict], path: Path, title: str = "") -> None:
    """Training loss (raw and smoothed) and held-out loss against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    ho = [(r["step"], r["heldout_loss"]) for r in rows if "heldout_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if tr:
        s, v = zip(*tr)
        ax.plot(s, v, color="tab:blue", alpha=0.3, lw=1, label="train (per step)")
        k = max(1, len(v) // 20)
        smooth = np.convolve(v, np.ones(k) / k, mode="valid")
        ax.plot(s[k - 1 :], smooth, color="tab:blue", lw=2, label=f"train ({k}-step mean)")
    if ho:
        s, v = zip(*ho)
        ax.plot(s, v, "o-", color="tab:orange", lw=2, label="held-out")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
