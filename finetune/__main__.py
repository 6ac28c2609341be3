"""python -m finetune COMMAND: prepare | prepare-stdlib | train | pretrain | eval | export | export-tiny."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, PretrainConfig, load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m finetune")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="a repository (or several) -> StarCoder2-format training data for fine-tuning")
    p.add_argument("repos", nargs="+", metavar="REPO", help="repository directories (and key=value overrides)")
    p.add_argument("--out", help="output directory (default runs/repo-data)")
    p.add_argument("--tokenizer", help="tokenizer directory (default models/sc2-tiny/hf)")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("prepare-stdlib", help="tokenizer + packed StarCoder2-format data from the Python stdlib")
    p.add_argument("overrides", nargs="*", help="key=value for StdlibDataConfig")
    p = sub.add_parser("train", help="LoRA fine-tuning of a Starcoder2 checkpoint (resumes from OUT/ckpt.pt)")
    p.add_argument("--config", help="TOML preset, e.g. finetune/configs/lora-sc2-tiny.toml")
    p.add_argument("overrides", nargs="*", help="key=value overriding the preset")
    p = sub.add_parser("pretrain", help="train all weights (resumes from OUT/ckpt.pt)")
    p.add_argument("--config", help="TOML preset, e.g. finetune/configs/sc2-tiny.toml")
    p.add_argument("overrides", nargs="*", help="key=value overriding the preset")
    p = sub.add_parser("eval", help="held-out next-line exact match / edit similarity of GGUF models")
    p.add_argument("--model", action="append", required=True, help="a models.toml name or .gguf path (repeat to compare)")
    p.add_argument("--data", required=True, help="a prepared data directory (with heldout_files.json)")
    p.add_argument("--per-file", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("export-tiny", help="export runs/sc2-tiny to models/sc2-tiny (HF dir, Q8_0 GGUF, metrics)")
    p.add_argument("--run", default="runs/sc2-tiny")
    p.add_argument("--out", default="models/sc2-tiny")
    args, extra = ap.parse_known_args(argv)
    overrides = list(getattr(args, "overrides", [])) + extra
    try:
        if args.cmd == "prepare":
            from .prepare import RepoDataConfig, prepare

            repos = [r for r in args.repos if not ("=" in r and not Path(r).exists())]
            kv = [r for r in args.repos if r not in repos] + overrides
            kv += [f"out={args.out}"] * bool(args.out) + [f"tokenizer={args.tokenizer}"] * bool(args.tokenizer)
            kv += ["progress=false"] * args.no_progress
            prepare(repos, load(RepoDataConfig, None, kv))
        elif args.cmd == "prepare-stdlib":
            from .prepare_stdlib import StdlibDataConfig, prepare

            prepare(load(StdlibDataConfig, None, overrides))
        elif args.cmd == "train":
            from .train import LoraTrainConfig, train as train_lora

            train_lora(load(LoraTrainConfig, args.config, overrides))
        elif args.cmd == "pretrain":
            from .pretrain import train

            train(load(PretrainConfig, args.config, overrides))
        elif args.cmd == "export-tiny":
            import json

            from .export import export_run

            m = export_run(args.run, args.out, "sc2-tiny")
            print(json.dumps({k: v for k, v in m.items() if k != "heldout_next_line"}, indent=1))
            print(json.dumps(m["heldout_next_line"], indent=1, ensure_ascii=False))
        elif args.cmd == "eval":
            return _eval(args)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _eval(args) -> int:
    import json
    from pathlib import Path

    from sc2lsp.backends.llama_cpp import LlamaCppBackend
    from sc2lsp.models.registry import resolve

    from .evaluate import evaluate, load_heldout, next_line_cases

    cases = next_line_cases(load_heldout(Path(args.data) / "heldout_files.json"), per_file=args.per_file, seed=args.seed)
    results = {}
    for name in args.model:
        results[name] = evaluate(LlamaCppBackend(resolve(name)), cases)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(f"{'model':40} {'cases':>6} {'exact':>7} {'edit sim':>9} {'ms/case':>8}")
        for name, r in results.items():
            print(f"{name:40} {r['cases']:>6} {r['exact_match']:>7.3f} {r['edit_similarity']:>9.3f} {r['ms_per_case']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
