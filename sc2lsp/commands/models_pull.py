"""``sc2lsp models pull NAME [--quant Q]``: download a model of models.toml into the HF cache
(``models.pull.pull``: resumable, verified)."""

from __future__ import annotations

import argparse

from ..models.pull import pull


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="a model name from `sc2lsp models list`")
    p.add_argument("--quant", help="quantization (default: the entry's default_quant, e.g. Q4_K_M)")


def run(args: argparse.Namespace) -> int:
    pull(args.name, args.quant)
    return 0
