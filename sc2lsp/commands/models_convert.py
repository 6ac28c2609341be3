"""``sc2lsp models convert HF_DIR OUT.gguf [--type T]`` (a Starcoder2 checkpoint) or
``--lora ADAPTER_DIR --base HF_DIR OUT.gguf`` (a PEFT LoRA adapter -> GGUF adapter)."""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import UserError
from ..models.convert import TYPES, convert_checkpoint
from ..models.gguf_lora import convert_lora



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", nargs="?", metavar="HF_DIR", help="Starcoder2 HF checkpoint directory (safetensors + tokenizer.json)")
    p.add_argument("out", metavar="OUT.gguf", help="output GGUF file")
    p.add_argument("--type", choices=TYPES, default="q8_0", help="weight type of the output (default q8_0)")
    p.add_argument("--lora", metavar="ADAPTER_DIR", help="convert this PEFT LoRA adapter instead of a model")
    p.add_argument("--base", metavar="HF_DIR", help="the adapter's base model (for --lora)")
    p.add_argument("--threads", type=int, default=0, help="quantization threads (default: all cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-tensor progress")


def run(args: argparse.Namespace) -> int:
    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.time()
    if args.lora:
        if args.src:
            raise UserError("with --lora, give the base model with --base, not as HF_DIR")
        if not args.base:
            raise UserError("--lora needs --base HF_DIR (the model the adapter was trained on)")
        out = convert_lora(args.lora, args.base, args.out, progress=progress)
    else:
        if not args.src:
            raise UserError("give the HF checkpoint directory: sc2lsp models convert HF_DIR OUT.gguf")
        out = convert_checkpoint(args.src, args.out, args.type, progress=progress, nthread=args.threads)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.1f}s")
    return 0
