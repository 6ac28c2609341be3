"""python -m finetune COMMAND: prepare-stdlib | pretrain (more commands land with the finetune issue)."""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, PretrainConfig, load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m finetune")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare-stdlib", help="tokenizer + packed StarCoder2-format data from the Python stdlib")
    p.add_argument("overrides", nargs="*", help="key=value for StdlibDataConfig")
    p = sub.add_parser("pretrain", help="train all weights (resumes from OUT/ckpt.pt)")
    p.add_argument("--config", help="TOML preset, e.g. finetune/configs/sc2-tiny.toml")
    p.add_argument("overrides", nargs="*", help="key=value overriding the preset")
    args, extra = ap.parse_known_args(argv)
    overrides = list(getattr(args, "overrides", [])) + extra
    try:
        if args.cmd == "prepare-stdlib":
            from .prepare_stdlib import StdlibDataConfig, prepare

            prepare(load(StdlibDataConfig, None, overrides))
        elif args.cmd == "pretrain":
            from .pretrain import train

            train(load(PretrainConfig, args.config, overrides))
    except (ConfigError, FileNotFoundError, ValueError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
