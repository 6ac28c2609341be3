"""The ``sc2lsp`` command line: models, complete, index, context, attribution, serve.

Each subcommand is a module of ``sc2lsp/commands/`` with ``add_arguments(parser)`` and
``run(args) -> int``; ``COMMANDS`` below is the one list of them. A ``UserError`` is printed as one
line (``error: ...``) unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

#: (command path, module of sc2lsp/commands, help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("models", "list"), "models_list", "list known models and whether they are present locally"),
    (("models", "pull"), "models_pull", "download a model GGUF from the Hugging Face hub into the HF cache"),
    (("models", "convert"), "models_convert", "convert a Starcoder2 HF checkpoint or PEFT adapter to GGUF"),
    (("complete",), "complete", "complete at a position of a file and print timings"),
    (("index",), "index", "index a workspace (files, symbols, languages, time)"),
    (("context",), "context", "show the repository context blocks the server would send at a position"),
    (("attribution", "build"), "attribution_build", "index corpus directories for attribution checks"),
    (("attribution", "check"), "attribution_check", "find spans of a text (stdin) in an attribution index"),
    (("attribution", "serve"), "attribution_serve", "serve an attribution index over HTTP (/overlap, /check)"),
    (("serve",), "serve", "run the language server (stdio, or --tcp HOST:PORT)"),
    (("stats",), "stats", "acceptance statistics per model and day (local only, never sent)"),
    (("tune",), "tune", "fine-tune a model on a repository in one step (LoRA, gated on held-out metrics)"),
]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sc2lsp", description=__doc__.splitlines()[0])
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {(): ap.add_subparsers(dest="command", required=True)}
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for path, module, help_ in COMMANDS:
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in groups:
                parsers[prefix] = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                groups[prefix] = parsers[prefix].add_subparsers(dest="_".join(prefix) + "_command", required=True)
        p = groups[path[:-1]].add_parser(path[-1], help=help_)
        module = f"sc2lsp.commands.{module}"
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return importlib.import_module(args._module).run(args) or 0
    except UserError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
