"""``sc2lsp models pull NAME [--quant Q]``: download a model of models.toml into the HF cache
(``models.pull.pull``: resumable, verified); ``--checkpoint``: the safetensors checkpoint for
fine-tuning (``models.pull_checkpoint``)."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ..models.pull import pull


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="a model name from `sc2lsp models list`")
    p.add_argument("--quant", help="quantization (default: the entry's default_quant, e.g. Q4_K_M)")
    p.add_argument("--checkpoint", action="store_true",
                   help="the safetensors checkpoint (hf_repo in models.toml) for fine-tuning, not the GGUF")


def run(args: argparse.Namespace) -> int:
    if args.checkpoint:
        if args.quant:
            raise UserError("--quant names a GGUF; a checkpoint has none (drop --quant or --checkpoint)")
        from ..models.pull_checkpoint import pull_checkpoint

        pull_checkpoint(args.name)
        return 0
    pull(args.name, args.quant)
    return 0
