"""``sc2lsp complete FILE --line L --col C``: one completion through the server's engine, with per-stage timings."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..core.prompt import FimMode
from ..errors import UserError


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
    from ..config import parse_settings
    from ..engine import Cursor, Engine
    from ..core.languages import language_id_for_path

    t0 = time.perf_counter()
    text = read_source(args.file)
    prefix, suffix = split_at(text, args.line, args.col)
    settings, problems = parse_settings(
        {"model": str(args.model), "maxTokens": args.max_tokens, "fimMode": args.mode, "threads": args.threads,
         "warmUp": False, "maxPromptMs": 3_600_000, "maxPredictMs": 3_600_000}  # one request: no time caps
    )
    if problems:
        raise UserError("; ".join(problems))
    engine = Engine(settings, notify=lambda level, message: None)
    try:
        engine.start().result()  # raises UserError for a missing or broken model
    except UserError:
        engine.close()
        raise
    load_ms = (time.perf_counter() - t0) * 1000
    cur = Cursor(str(args.file), text, len(prefix), language_id_for_path(args.file, text), args.file.name)
    s = engine.complete(cur).future.result()
    engine.close()
    t = s.timings
    prompt_ms, gen_ms = t.get("prompt_ms", 0.0), t.get("generate_ms", 0.0)
    result = {
        "model": engine.model_path,
        "suggestion": s.text,
        "raw": s.raw,
        "stop_reason": s.reason,
        "load_ms": round(load_ms, 1),
        "prompt_tokens": t.get("prompt_tokens", 0),
        "prompt_ms": round(prompt_ms, 1),
        "generated_tokens": t.get("generated_tokens", 0),
        "generate_ms": round(gen_ms, 1),
        "postprocess_ms": round(t.get("postprocess_ms", 0.0), 1),
        "prompt_tok_per_s": round(t.get("prompt_tokens_evaluated", 0) / max(prompt_ms, 1e-6) * 1000, 1),
        "gen_tok_per_s": round(t.get("generated_tokens", 0) / max(gen_ms, 1e-6) * 1000, 1),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        line = prefix.rsplit("\n", 1)[-1]
        print(f"{args.file}:{args.line}:{args.col}  model {Path(engine.model_path or '').name}")
        print(f"--- before the cursor ---\n{line}")
        print(f"--- suggestion (after post-processing) ---\n{s.text}")
        if s.raw != s.text:
            print(f"--- raw model output ---\n{s.raw}")
        print(
            f"--- timings ---\nload {result['load_ms']} ms | prompt {result['prompt_tokens']} tok in {result['prompt_ms']} ms "
            f"({result['prompt_tok_per_s']} tok/s) | generate {result['generated_tokens']} tok in {result['generate_ms']} ms "
            f"({result['gen_tok_per_s']} tok/s) | postprocess {result['postprocess_ms']} ms | stop: {s.reason}"
        )
    return 0
