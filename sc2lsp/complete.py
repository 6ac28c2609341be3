"""``sc2lsp complete FILE --line L --col C``: one FIM completion with per-stage timings."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .core.prompt import FimMode, infill_prompt
from .core.tokens import STOP_TOKENS
from .errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path)
    p.add_argument("--line", type=int, required=True, help="1-based line of the cursor")
    p.add_argument("--col", type=int, required=True, help="1-based column of the cursor (characters)")
    p.add_argument("--model", default="sc2-tiny", help="a models.toml name or a .gguf path (default: sc2-tiny)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--mode", choices=[m.value for m in FimMode], default=FimMode.SPM.value)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def split_at(text: str, line: int, col: int) -> tuple[str, str]:
    """Split ``text`` at a 1-based (line, column) cursor; out-of-range positions are errors."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise UserError(f"line {line} is outside the file (1..{len(lines)})")
    if not 1 <= col <= len(lines[line - 1]) + 1:
        raise UserError(f"column {col} is outside line {line} (1..{len(lines[line - 1]) + 1})")
    offset = sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
    return text[:offset], text[offset:]


def read_source(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if b"\0" in data[:8192]:
        raise UserError(f"{path} looks binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not valid UTF-8 (byte {e.start})") from None


def run(args: argparse.Namespace) -> int:
    from .backends.llama_cpp import LlamaCppBackend, LlamaSettings
    from .models.registry import resolve

    t0 = time.perf_counter()
    prefix, suffix = split_at(read_source(args.file), args.line, args.col)
    model_path = resolve(args.model)
    backend = LlamaCppBackend(model_path, LlamaSettings(n_threads=args.threads))
    load_ms = (time.perf_counter() - t0) * 1000
    prompt = infill_prompt(prefix, suffix, path=args.file.name, mode=FimMode(args.mode))
    gen = backend.generate(prompt, max_tokens=args.max_tokens, stop=STOP_TOKENS)
    t = gen.timings
    result = {
        "model": str(model_path),
        "suggestion": gen.text,
        "stop_reason": gen.stop_reason,
        "load_ms": round(load_ms, 1),
        "prompt_tokens": t.prompt_tokens,
        "prompt_ms": round(t.prompt_ms, 1),
        "generated_tokens": t.generated_tokens,
        "generate_ms": round(t.generate_ms, 1),
        "prompt_tok_per_s": round(t.prompt_tokens_evaluated / max(t.prompt_ms, 1e-6) * 1000, 1),
        "gen_tok_per_s": round(t.generated_tokens / max(t.generate_ms, 1e-6) * 1000, 1),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        line = prefix.rsplit("\n", 1)[-1]
        print(f"{args.file}:{args.line}:{args.col}  model {model_path.name}")
        print(f"--- before the cursor ---\n{line}")
        print(f"--- suggestion ---\n{gen.text}")
        print(
            f"--- timings ---\nload {result['load_ms']} ms | prompt {t.prompt_tokens} tok in {result['prompt_ms']} ms "
            f"({result['prompt_tok_per_s']} tok/s) | generate {t.generated_tokens} tok in {result['generate_ms']} ms "
            f"({result['gen_tok_per_s']} tok/s) | stop: {gen.stop_reason}"
        )
    return 0
