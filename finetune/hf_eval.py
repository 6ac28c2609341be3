"""Evaluate HF checkpoints and LoRA adapters (transformers/peft) the way the server's GGUF is evaluated.

``HFBackend`` implements the backend protocol of ``sc2lsp.backends.base`` (``generate``,
``tokenize``) with greedy decoding and a KV cache, so ``evaluate.evaluate`` scores a torch model
with the same prompts, stops and metrics as a GGUF through llama.cpp. ``load_model(spec)``
accepts an HF Starcoder2 directory, a PEFT adapter directory (its base comes from
``adapter_config.json`` or ``base=``), or a LoRA run directory (``RUN/adapter``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sc2lsp.backends.base import Generation, Timings
from sc2lsp.core.tokens import STOP_TOKENS


def model_kind(spec: str | Path) -> str | None:
    """``"hf"``, ``"adapter"`` (PEFT dir or LoRA run dir) or None (not a torch model: GGUF or a name)."""
    p = Path(spec)
    if (p / "adapter_config.json").is_file() or (p / "adapter" / "adapter_config.json").is_file():
        return "adapter"
    if (p / "config.json").is_file() and (p / "model.safetensors").exists():
        return "hf"
    return None


def load_model(spec: str | Path, base: str | Path | None = None, *, merge: bool = False):
    """``(model, tokenizer_dir)`` for an HF directory, an adapter directory or a LoRA run directory.

    ``merge``: fold the LoRA weights into the base (same function, faster generation).
    """
    import torch
    from transformers import Starcoder2ForCausalLM

    from .model import check_base
    from .train import load_lora_model

    p = Path(spec)
    if model_kind(p) == "adapter":
        adapter = p if (p / "adapter_config.json").is_file() else p / "adapter"
        if base is None:
            base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base or not Path(base).is_dir():
            raise ValueError(f"{adapter}: its base checkpoint {base!r} is not a directory here; pass it explicitly")
        model = load_lora_model(base, adapter=adapter)
        if merge:
            model = model.merge_and_unload()
        tok_dir = adapter if (adapter / "tokenizer.json").is_file() else Path(base)
    else:
        check_base(p)
        model = Starcoder2ForCausalLM.from_pretrained(str(p), dtype=torch.float32)
        tok_dir = p
    model.eval()
    return model, tok_dir


class HFBackend:
    """Greedy generation with a transformers model; the prompt is tokenized with special tokens."""

    def __init__(self, model, tokenizer, name: str = "hf"):
        self.model, self.tok, self.name = model, tokenizer, name
        self._stop_ids = {tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS}

    def tokenize(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def generate(self, prompt: str, *, max_tokens: int, time_limit_s: float | None = None,
                 should_stop: Callable[[], bool] | None = None, stop: Sequence[str] = ()) -> Generation:
        import torch

        ids = self.tokenize(prompt)
        t = Timings(prompt_tokens=len(ids))
        t0 = time.perf_counter()
        out: list[int] = []
        reason, text = "length", ""
        with torch.no_grad():
            res = self.model(input_ids=torch.tensor([ids]), use_cache=True)
            t1 = time.perf_counter()
            t.prompt_ms = (t1 - t0) * 1000
            while len(out) < max_tokens:
                tok = int(res.logits[0, -1].argmax())
                if tok in self._stop_ids:
                    reason = "stop"
                    break
                out.append(tok)
                text = self.detokenize(out)
                if any(s in text for s in stop):
                    text = text[: min(text.index(s) for s in stop if s in text)]
                    reason = "stop"
                    break
                if (should_stop and should_stop()) or (time_limit_s and time.perf_counter() - t0 > time_limit_s):
                    reason = "time"
                    break
                res = self.model(input_ids=torch.tensor([[tok]]), past_key_values=res.past_key_values, use_cache=True)
        t.generated_tokens = len(out)
        t.generate_ms = (time.perf_counter() - t1) * 1000
        return Generation(text=text if out else "", stop_reason=reason, timings=t)


def heldout_rows_loss(model, rows: np.ndarray, batch_size: int = 8) -> float:
    """Mean next-token loss of ``model`` over all held-out rows (nats/token)."""
    import torch

    from .loop import heldout_loss

    return heldout_loss(model, rows, batch_size, 10**9, "cpu", torch.autocast("cpu", enabled=False))
