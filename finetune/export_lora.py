"""``python -m finetune export RUN``: a LoRA run -> GGUF files the server loads, registered by name.

* merged (default): base + adapter merged in torch (``merge_and_unload``) into ``RUN/merged/``
  (safetensors + tokenizer), converted by ``sc2lsp.models.convert.convert_checkpoint`` to
  ``OUT/NAME-QUANT.gguf``, and added to the user's ``~/.config/sc2lsp/models.toml`` as ``NAME``
  (an entry of the same name is replaced; other entries are kept), so ``sc2lsp serve --model NAME``
  uses it;
* ``--adapter``: also the GGUF LoRA adapter ``OUT/NAME-lora.gguf``
  (``sc2lsp.models.gguf_lora.convert_lora``), registered as the adapter entry ``NAME-lora``
  (``base`` = the models.toml entry whose ``hf_checkpoint`` is the run's base, ``lora`` = the
  adapter), so ``sc2lsp serve --model NAME-lora`` loads the base GGUF with the adapter on top
  (llama.cpp's ``lora_path``). A base that no entry names is converted too (``OUT/NAME-base-QUANT.gguf``)
  and registered as ``NAME-base``;
* the attribution index that ``prepare`` wrote into the run's data directory
  (``DATA/attribution``) is copied to ``OUT/NAME-attribution/`` next to the GGUF, and the
  models.toml entry links it (``attribution_index``), so the server checks this model's
  suggestions against its fine-tuning corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def merge_adapter(run: Path, out_dir: Path) -> Path:
    """``RUN/adapter`` merged into its base, saved as an HF Starcoder2 directory ``out_dir``."""
    from .hf_eval import load_model

    model, tok_dir = load_model(run)
    merged = model.merge_and_unload()
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    for f in TOKENIZER_FILES:
        if (Path(tok_dir) / f).is_file():
            shutil.copy2(Path(tok_dir) / f, out_dir / f)
    return out_dir


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def toml_key(name: str) -> str:
    """``name`` as one TOML key: bare when it can be, else quoted (``sc2.custom`` is not ``sc2``'s sub-table)."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def registry_entry(name: str, gguf: Path, quant: str, *, description: str, context_length: int,
                   hf_checkpoint: Path | None, license_: str = "same as the base model",
                   attribution_index: list[Path] | tuple[Path, ...] = ()) -> str:
    q = quant.upper()
    lines = [
        f"[models.{toml_key(name)}]",
        f"description = {json.dumps(description)}",
        f"license = {json.dumps(license_)}",
        f"context_length = {context_length}",
        f'default_quant = "{q}"',
    ]
    if hf_checkpoint is not None:
        lines.append(f"hf_checkpoint = {json.dumps(str(hf_checkpoint.resolve()))}")
    if attribution_index:
        lines.append(f"attribution_index = {json.dumps([str(Path(p).resolve()) for p in attribution_index])}")
    lines += [
        "",
        f"[models.{toml_key(name)}.quants.{q}]",
        f"path = {json.dumps(str(gguf.resolve()))}",
        f"size = {gguf.stat().st_size}",
        f'sha256 = "{_sha256(gguf)}"',
    ]
    return "\n".join(lines) + "\n"


def adapter_entry(name: str, base: str, lora: Path, *, description: str) -> str:
    return "\n".join([
        f"[models.{toml_key(name)}]",
        f"description = {json.dumps(description)}",
        f"base = {json.dumps(base)}",
        f"lora = {json.dumps(str(lora.resolve()))}",
    ]) + "\n"


def registry_base_for(hf_dir: Path, user_toml: Path | None = None) -> str | None:
    """The name of the models.toml entry whose ``hf_checkpoint`` is ``hf_dir`` (and whose GGUF is here)."""
    from sc2lsp.errors import UserError
    from sc2lsp.models.registry import load_registry, locate

    try:
        reg = load_registry(user=user_toml)
    except UserError:
        return None
    target = hf_dir.resolve()
    for e in reg.models.values():
        if e.base is None and e.hf_checkpoint is not None and e.hf_checkpoint.resolve() == target \
                and locate(e, e.quant()) is not None:
            return e.name
    return None


def upsert_entry(toml_path: Path, name: str, entry: str) -> None:
    """Replace ``[models.NAME]`` (and its sub-tables) in ``toml_path`` with ``entry``, or append it.

    Exact name match, everything else kept byte for byte (comments too), written under a lock to
    a unique temporary file, validated with the registry's parser, fsynced and renamed
    (``toml_edit.upsert``).
    """
    from sc2lsp.models.registry import parse_models_toml

    from .toml_edit import upsert

    upsert(Path(toml_path), name, entry, validate=parse_models_toml)


def ship_attribution_index(data: Path | None, dest: Path) -> Path | None:
    """Copy ``DATA/attribution`` (written by ``prepare``) to ``dest``; None when the data has none.

    The copy is checked by opening it; an existing ``dest`` is replaced only after that."""
    from sc2lsp.attribution.query import AttributionIndex

    from .prepare import ATTRIBUTION_DIR

    src = data / ATTRIBUTION_DIR if data is not None else None
    if src is None or not (src / "manifest.json").is_file():
        return None
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    AttributionIndex.open(tmp)  # a damaged index is an error here, not in the editor
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def export(run: str | Path, *, quant: str = "q8_0", name: str | None = None, out: str | Path | None = None,
           adapter: bool = False, register: bool = True, user_toml: Path | None = None) -> dict:
    from sc2lsp.models.convert import convert_checkpoint
    from sc2lsp.models.registry import user_models_toml

    run = Path(run)
    if not (run / "adapter" / "adapter_config.json").is_file():
        raise ValueError(f"{run}: no adapter/ (run `python -m finetune train` to the end first)")
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    cfg = json.loads((run / "config.json").read_text())
    name = name or re.sub(r"[^a-z0-9._-]+", "-", run.resolve().name.lower()).strip("-") or "lora"
    out = Path(out) if out else run / "export"
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"name": name}

    merged = merge_adapter(run, run / "merged")
    gguf = convert_checkpoint(merged, out / f"{name}-{quant.lower()}.gguf", quant.lower())
    result["merged_hf"] = str(merged)
    result["gguf"] = str(gguf)
    if adapter:
        from sc2lsp.models.gguf_lora import convert_lora

        result["adapter_gguf"] = str(convert_lora(run / "adapter", cfg["base"], out / f"{name}-lora.gguf"))
    index = ship_attribution_index(Path(cfg["data"]) if cfg.get("data") else None, out / f"{name}-attribution")
    if index is not None:
        result["attribution_index"] = str(index)
    if register:
        base_dir = Path(cfg["base"])
        base_cfg = json.loads((base_dir / "config.json").read_text())
        ctx = int(base_cfg.get("max_position_embeddings", 2048))
        desc = (f"LoRA fine-tune of {base_dir.name} on {cfg['data']} (finetune export; held-out loss "
                f"{summary.get('base_heldout_loss')} -> {summary.get('heldout_loss')})")
        toml_path = user_toml or user_models_toml()
        upsert_entry(toml_path, name, registry_entry(name, gguf, quant, description=desc, context_length=ctx,
                                                     hf_checkpoint=merged,
                                                     attribution_index=[index] if index is not None else ()))
        result["registered"] = [name]
        if adapter:
            base_name = registry_base_for(base_dir, toml_path)
            if base_name is None:  # no entry serves this base yet: convert it and register it
                base_name = f"{name}-base"
                base_gguf = convert_checkpoint(base_dir, out / f"{base_name}-{quant.lower()}.gguf", quant.lower())
                upsert_entry(toml_path, base_name, registry_entry(
                    base_name, base_gguf, quant, description=f"base of {name}-lora ({base_dir})",
                    context_length=ctx, hf_checkpoint=base_dir))
                result["base_gguf"] = str(base_gguf)
                result["registered"].append(base_name)
            upsert_entry(toml_path, f"{name}-lora", adapter_entry(
                f"{name}-lora", base_name, Path(result["adapter_gguf"]),
                description=desc.replace("LoRA fine-tune", "LoRA adapter", 1) + f" on {base_name}"))
            result["registered"].append(f"{name}-lora")
        result["registered_in"] = str(toml_path)
    return result
