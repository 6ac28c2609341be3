"""Convert a PEFT LoRA adapter of a Starcoder2 model to a llama.cpp GGUF adapter.

The adapter GGUF has ``general.architecture=starcoder2``, ``general.type=adapter``,
``adapter.type=lora`` and ``adapter.lora.alpha``; each adapted weight ``W`` (GGUF name, e.g.
``blk.0.attn_q.weight``) gets two f32 tensors ``W.lora_a`` (PEFT ``lora_A``, ``[r, in]``) and
``W.lora_b`` (PEFT ``lora_B``, ``[out, r]``), both untransposed. llama.cpp adds
``scale * alpha / r * B @ A`` to ``W`` with ``r`` read from each tensor's shape, which is PEFT's
``lora_alpha / r`` scaling (for rsLoRA, ``alpha / sqrt(r)``, alpha is rescaled to match).

Load it with ``Llama(model_path=BASE.gguf, lora_path=ADAPTER.gguf)``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from .convert import ARCH, Progress, atomic_output, check_dir, read_hparams, read_json
from .gguf_tensors import checkpoint_tensors, read_header, load_f32

#: Starcoder2's linear layers (field notes: bigcode's gate/up/down_proj do not exist in Starcoder2)
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj")
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


def read_adapter_config(adapter_dir: Path) -> dict:
    cfg = read_json(adapter_dir / "adapter_config.json", "a PEFT adapter config is needed")
    if cfg.get("peft_type", "LORA") != "LORA":
        raise UserError(f"{adapter_dir}: peft_type {cfg.get('peft_type')!r}; only LoRA adapters can be converted")
    problems = []
    if cfg.get("use_dora"):
        problems.append("DoRA (use_dora) is not supported by llama.cpp")
    if cfg.get("alpha_pattern"):
        problems.append("per-module lora_alpha (alpha_pattern) cannot be expressed in one GGUF alpha")
    if cfg.get("modules_to_save"):
        problems.append(f"fully trained modules_to_save {cfg['modules_to_save']} cannot go into a LoRA GGUF")
    if cfg.get("bias", "none") != "none" or cfg.get("lora_bias"):
        problems.append("trained biases (bias/lora_bias) are not supported")
    if cfg.get("fan_in_fan_out"):
        problems.append("fan_in_fan_out adapters are not for Starcoder2")
    if problems:
        raise UserError(f"{adapter_dir}: " + "; ".join(problems))
    try:
        cfg["r"], cfg["lora_alpha"] = int(cfg["r"]), float(cfg.get("lora_alpha", cfg["r"]))
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{adapter_dir}/adapter_config.json: missing or bad {e}") from None
    return cfg


def adapter_weights(adapter_dir: Path):
    st = adapter_dir / "adapter_model.safetensors"
    if st.is_file():
        return read_header(st)
    if (adapter_dir / "adapter_model.bin").is_file():
        raise UserError(f"{adapter_dir}: adapter_model.bin (pickle) is not supported; save with safe_serialization=True")
    raise UserError(f"{adapter_dir}: no adapter_model.safetensors")


def convert_lora(
    adapter_dir: str | Path, base_dir: str | Path, out: str | Path, *, progress: Progress | None = None
) -> Path:
    """Write the GGUF adapter ``out`` for the PEFT LoRA ``adapter_dir`` trained on ``base_dir``."""
    import gguf

    adapter_dir = check_dir(adapter_dir, "PEFT adapter directory")
    base_dir = check_dir(base_dir, "base HF checkpoint directory")
    out = Path(out)
    cfg = read_adapter_config(adapter_dir)
    hp = read_hparams(base_dir)
    base = checkpoint_tensors(base_dir)
    refs = adapter_weights(adapter_dir)
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.STARCODER2, hp.n_layer)

    pairs: dict[str, dict[str, object]] = {}
    for key, ref in refs.items():
        m = _KEY.match(key)
        if not m:
            raise UserError(f"{adapter_dir}: unexpected adapter tensor {key} (only LoRA A/B matrices are supported)")
        module = m["module"]
        if module.rsplit(".", 1)[-1] not in TARGETS:
            raise UserError(f"{adapter_dir}: LoRA on {module}; only {', '.join(TARGETS)} can be converted")
        if module + ".weight" not in base:
            raise UserError(f"{adapter_dir}: adapter targets {module}, which the base model {base_dir} does not have")
        pairs.setdefault(module, {})[m["ab"]] = ref
    if not pairs:
        raise UserError(f"{adapter_dir}: the adapter has no LoRA tensors")

    plan = []
    for module in sorted(pairs, key=_layer_order):
        ab = pairs[module]
        if set(ab) != {"A", "B"}:
            raise UserError(f"{adapter_dir}: {module} has lora_{'A' if 'A' not in ab else 'B'} missing")
        a, b, w = ab["A"], ab["B"], base[module + ".weight"]
        r = a.shape[0]
        if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != w.shape[1] or b.shape != (w.shape[0], r):
            raise UserError(
                f"{adapter_dir}: {module} lora_A {a.shape} / lora_B {b.shape} do not fit the base weight {w.shape} "
                f"of {base_dir} (adapter trained on another model?)"
            )
        name = name_map.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None:
            raise UserError(f"{adapter_dir}: no GGUF name for {module}")
        plan += [(name + ".lora_a", a), (name + ".lora_b", b)]

    alpha = cfg["lora_alpha"]
    if cfg.get("use_rslora"):  # PEFT scales by alpha/sqrt(r), llama.cpp by alpha/r
        ranks = {cfg["r"], *cfg.get("rank_pattern", {}).values()}
        if len(ranks) != 1:
            raise UserError(f"{adapter_dir}: rsLoRA with several ranks cannot be expressed in one GGUF alpha")
        alpha *= math.sqrt(cfg["r"])

    with atomic_output(out) as tmp:
        w = gguf.GGUFWriter(tmp, ARCH)
        w.add_string("general.type", "adapter")
        w.add_name(adapter_dir.resolve().name)
        w.add_string("adapter.type", "lora")
        w.add_float32("adapter.lora.alpha", float(alpha))
        for name, ref in plan:
            w.add_tensor_info(name, ref.shape, np.dtype(np.float32), 4 * int(np.prod(ref.shape)))
        w.write_header_to_file(tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for k, (name, ref) in enumerate(plan):
            arr = load_f32(ref)
            if not np.isfinite(arr).all():
                raise UserError(f"{adapter_dir}: {ref.name} contains NaN or infinite values")
            w.write_tensor_data(arr)
            if progress:
                progress(f"[{k + 1}/{len(plan)}] {name} {ref.shape}")
        w.close()
    return out


def _layer_order(module: str) -> tuple[int, str]:
    m = re.search(r"layers\.(\d+)\.", module)
    return (int(m.group(1)) if m else -1, module)
