"""python -m finetune COMMAND: prepare | prepare-stdlib | train | pretrain | eval | export | export-tiny."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sc2lsp.errors import UserError

from .config import ConfigError, PretrainConfig, load
from .paths import project_path


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m finetune")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="a repository (or several) -> StarCoder2-format training data for fine-tuning")
    p.add_argument("repos", nargs="+", metavar="REPO", help="repository directories (and key=value overrides)")
    p.add_argument("--out", help="output directory (default ~/.cache/sc2lsp/runs/repo-data)")
    p.add_argument("--tokenizer", help="tokenizer directory (default: sc2-tiny's, in the installed project)")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("prepare-stdlib", help="tokenizer + packed StarCoder2-format data from the Python stdlib")
    p.add_argument("overrides", nargs="*", help="key=value for StdlibDataConfig")
    p = sub.add_parser("train", help="LoRA fine-tuning of a Starcoder2 checkpoint (resumes from OUT/ckpt.pt)")
    p.add_argument("--config", help="TOML preset, e.g. finetune/configs/lora-sc2-tiny.toml")
    p.add_argument("overrides", nargs="*", help="key=value overriding the preset")
    p = sub.add_parser("pretrain", help="train all weights (resumes from OUT/ckpt.pt)")
    p.add_argument("--config", help="TOML preset, e.g. finetune/configs/sc2-tiny.toml")
    p.add_argument("overrides", nargs="*", help="key=value overriding the preset")
    p = sub.add_parser("eval", help="models side by side: held-out next-line exact match, edit similarity, loss")
    p.add_argument("--model", action="append", required=True,
                   help="repeat to compare: a models.toml name, a .gguf, BASE.gguf+ADAPTER.gguf, an HF checkpoint "
                        "directory, a PEFT adapter directory or a LoRA run directory")
    p.add_argument("--base", help="base HF checkpoint for adapter directories (default: from adapter_config.json)")
    p.add_argument("--data", help="a directory from `prepare` or `prepare-stdlib` (heldout_files.json)")
    p.add_argument("--benchmark", choices=["humaneval-infill"], help="a public benchmark instead of --data")
    p.add_argument("--limit", type=int, default=0, help="benchmark: only the first N cases")
    p.add_argument("--no-exec", action="store_true", help="benchmark: exact match only, do not run the tests")
    p.add_argument("--per-file", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("export", help="a LoRA run -> merged GGUF (+ GGUF adapter), registered in the user's models.toml")
    p.add_argument("run", metavar="RUN", help="a run directory of `train` (with adapter/)")
    p.add_argument("--quant", default="q8_0", help="f32, f16, q8_0 or q4_k_m (default q8_0)")
    p.add_argument("--name", help="model name for models.toml (default: the run directory's name)")
    p.add_argument("--out", help="output directory (default RUN/export)")
    p.add_argument("--adapter", action="store_true", help="also write the GGUF LoRA adapter")
    p.add_argument("--no-register", action="store_true", help="do not touch ~/.config/sc2lsp/models.toml")
    p = sub.add_parser("tune", help="prepare -> LoRA -> eval base vs tuned -> register NAME-lora if better -> report")
    from .tune import add_arguments as tune_arguments

    tune_arguments(p)
    p = sub.add_parser("export-tiny", help="export runs/sc2-tiny-long (stage 2) to models/sc2-tiny (HF dir, Q8_0 GGUF, metrics)")
    p.add_argument("--run", default=str(project_path("runs/sc2-tiny-long")))
    p.add_argument("--out", default=str(project_path("models/sc2-tiny")))
    return ap


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    overrides = list(getattr(args, "overrides", [])) + extra
    try:
        return _run(args, overrides)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to go on where it stopped", file=sys.stderr)
        return 130
    except (ConfigError, FileNotFoundError, ValueError, UserError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, overrides: list[str]) -> int:
    """Run the subcommand ``args.cmd`` (``key=value`` overrides of its config)."""
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
        from .distributed import is_distributed

        if is_distributed():  # launched by torchrun: FSDP2 across the processes
            from .distributed import train
        else:
            from .pretrain import train

        train(load(PretrainConfig, args.config, overrides))
    elif args.cmd == "export":
        import json

        from .export_lora import export

        print(json.dumps(export(args.run, quant=args.quant, name=args.name, out=args.out, adapter=args.adapter,
                                register=not args.no_register), indent=1))
    elif args.cmd == "export-tiny":
        import json

        from .export import export_run

        from .probes import run_probes

        m = export_run(args.run, args.out, "sc2-tiny")
        m["probes"] = run_probes(str(Path(args.out) / m["gguf"]))
        m["probes_passed"] = f"{sum(p['ok'] for p in m['probes'])}/{len(m['probes'])}"
        (Path(args.out) / "metrics.json").write_text(json.dumps(m, indent=1, ensure_ascii=False) + "\n")
        print(json.dumps({k: v for k, v in m.items() if k != "heldout_next_line"}, indent=1))
        print(json.dumps(m["heldout_next_line"], indent=1, ensure_ascii=False))
    elif args.cmd == "eval":
        return _eval(args)
    elif args.cmd == "tune":
        from .tune import main as tune_main

        return tune_main(args)
    return 0


def _eval(args) -> int:
    """Base vs fine-tuned side by side: GGUF models through llama.cpp (the serving path), HF checkpoints,
    PEFT adapters and LoRA run directories through transformers/peft (these also get held-out loss).
    ``--data``: held-out next lines of a prepared data set; ``--benchmark humaneval-infill``: HumanEval
    single-line infilling (exact match and pass@1)."""
    import json

    import numpy as np

    from .hf_eval import model_kind

    if not args.data and not args.benchmark:
        raise ValueError("give --data DIR (held-out code of a prepared data set) or --benchmark humaneval-infill")
    if args.benchmark:
        from . import humaneval_infill as he

        cases = he.load_cases()[: args.limit or None]
        what = f"{len(cases)} HumanEval single-line infilling cases"
        score = lambda backend: he.run(backend, cases, execute=not args.no_exec, progress=not args.json)  # noqa: E731
        held_rows = vocab = None
    else:
        from .evaluate import evaluate, load_heldout, next_line_cases

        data = Path(args.data)
        cases = next_line_cases(load_heldout(data / "heldout_files.json"), per_file=args.per_file, seed=args.seed)
        what = f"{len(cases)} held-out next-line cases from {data}"
        score = lambda backend: evaluate(backend, cases)  # noqa: E731
        held_rows = np.load(data / "heldout.npy") if (data / "heldout.npy").is_file() else None
        manifest = data / "manifest.json"
        vocab = json.loads(manifest.read_text()).get("vocab_size") if manifest.is_file() else None
    results = {}
    for name in args.model:
        if model_kind(name):
            from transformers import PreTrainedTokenizerFast

            from .hf_eval import HFBackend, heldout_rows_loss, load_model

            model, tok_dir = load_model(name, base=args.base, merge=True)
            r = score(HFBackend(model, PreTrainedTokenizerFast.from_pretrained(str(tok_dir)), name))
            if held_rows is not None and len(held_rows) and model.config.vocab_size == vocab:
                r["heldout_loss"] = round(heldout_rows_loss(model, held_rows), 4)
            r["engine"] = "transformers"
        else:
            r = score(_gguf_backend(name))
            r["engine"] = "llama.cpp"
        results[name] = r
    if args.json:
        print(json.dumps(results, indent=1, ensure_ascii=False))
        return 0
    print(what)
    if args.benchmark:
        print(f"{'model':44} {'engine':12} {'exact':>7} {'pass@1':>7}")
        for name, r in results.items():
            p1 = "-" if r["pass@1"] is None else f"{r['pass@1']:.3f}"
            print(f"{name[-44:]:44} {r['engine']:12} {r['exact_match']:>7.3f} {p1:>7}")
        return 0
    print(f"{'model':44} {'engine':12} {'exact':>7} {'edit sim':>9} {'loss':>7} {'ms/case':>8}")
    for name, r in results.items():
        loss = f"{r['heldout_loss']:.3f}" if "heldout_loss" in r else "-"
        print(f"{name[-44:]:44} {r['engine']:12} {r['exact_match']:>7.3f} {r['edit_similarity']:>9.3f} "
              f"{loss:>7} {r['ms_per_case']:>8.1f}")
    return 0


def _gguf_backend(name: str):
    """A llama.cpp backend for ``NAME`` (an adapter entry of models.toml loads base + adapter), ``PATH.gguf``,
    or ``BASE+ADAPTER.gguf`` (a name or GGUF and a LoRA adapter GGUF)."""
    from sc2lsp.backends.factory import load_backend
    from sc2lsp.config import Settings

    base, _, adapter = name.partition("+")
    return load_backend(Settings(model=base, token_healing=False), adapter=adapter or None)


if __name__ == "__main__":
    sys.exit(main())
