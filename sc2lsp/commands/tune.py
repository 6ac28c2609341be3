"""``sc2lsp tune REPO [--base sc2-tiny|starcoder2-3b] [--name NAME] [--force]``: fine-tune on a repository.

``sc2lsp`` never imports ``finetune`` (nor torch): the pipeline (``finetune/tune.py``: prepare ->
LoRA -> eval base vs tuned -> register ``NAME-lora`` only if better -> ``tune-report.md``) runs as a
child process, ``python -m finetune tune``, with this interpreter. Without the training extras the
command is one error naming the install command. The language server's ``sc2lsp.tune`` runs the
same child (``child_command``).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from ..errors import UserError
from ..tuning import (  # noqa: F401  (PROJECT ... missing_extras: this module's names before tuning.py)
    PROJECT,
    TRAIN_MODULES,
    check_extras,
    child_command,
    child_env,
    install_hint,
    missing_extras,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("repo", metavar="REPO", help="the repository directory to fine-tune on")
    p.add_argument("--base", default="sc2-tiny", help="models.toml entry to tune: sc2-tiny (default), starcoder2-3b, ...")
    p.add_argument("--name", help="register the adapter as NAME-lora (default: the repository's directory name)")
    p.add_argument("--force", action="store_true", help="register even when the tuned model is not better")
    p.add_argument("--work", help="work directory (default ~/.cache/sc2lsp/runs/tune/NAME)")
    p.add_argument("--gate", choices=["heldout_loss", "exact_match", "edit_similarity"],
                   help="the held-out metric the tuned model must beat (default heldout_loss)")
    p.add_argument("--prepare", action="append", default=[], metavar="KEY=VALUE", help="data preparation setting")
    p.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                   help="training setting over the preset (e.g. max_steps=200, lr=1e-3)")
    p.add_argument("--per-file", type=int, help="held-out next-line cases per file (default 20)")
    p.add_argument("--events", help="append JSON progress events to this file")
    p.add_argument("--json", action="store_true", help="print the result as JSON at the end")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    repo = Path(args.repo).expanduser()
    if not repo.is_dir():
        raise UserError(f"{args.repo}: not a directory (give the repository to fine-tune on)")
    check_extras()
    extra: list[str] = []
    for flag in ("work", "gate", "events", "per_file"):
        v = getattr(args, flag)
        if v is not None:
            extra += [f"--{flag.replace('_', '-')}", str(v)]
    for kv in args.prepare:
        extra += ["--prepare", kv]
    for kv in args.train:
        extra += ["--train", kv]
    extra += ["--json"] * args.json + ["--no-progress"] * args.no_progress
    cmd = child_command(repo.resolve(), base=args.base, name=args.name, force=args.force, extra=extra)
    return run_child(cmd)


def run_child(cmd: list[str]) -> int:
    """Run the pipeline and pass Ctrl-C / SIGTERM on to it (a killed run resumes next time)."""
    import signal

    proc = subprocess.Popen(cmd, env=child_env(), start_new_session=True)  # signals reach it once: from here
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
