"""``sc2lsp index PATH``: index a workspace as the server would and report what went in."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="workspace folder")
    p.add_argument("--workers", type=int, default=None, help="parser processes (default: one per core for large trees)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


class Progress:
    """A tqdm bar on stderr while parsing (only when stderr is a terminal)."""

    def __init__(self, enabled: bool):
        self.bar = None
        self.enabled = enabled

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or stage != "parse":
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", desc="indexing", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def build(root: Path, workers: int | None = None, show_progress: bool = True):
    """(index, report) for ``root``; a missing or unreadable folder is a ``UserError``."""
    from ..context.index import RepoIndex
    from ..workspace.indexer import index_workspace

    if not root.is_dir():
        raise UserError(f"{root} is not a folder")
    index = RepoIndex()
    progress = Progress(show_progress and sys.stderr.isatty())
    try:
        report = index_workspace(index, root, workers=workers, progress=progress)
    finally:
        progress.close()
    return index, report


def run(args: argparse.Namespace) -> int:
    index, report = build(args.path, args.workers, show_progress=not args.json)
    stats = index.stats()
    result = {
        "root": str(args.path),
        "files": stats["files"],
        "definitions": stats["definitions"],
        "imports": stats["imports"],
        "languages": stats["languages"],
        "files_with_syntax_errors": stats["files_with_syntax_errors"],
        "seconds": round(report.seconds, 3),
        "files_per_second": round(report.files_per_second, 1),
        "workers": report.workers,
        "skipped": dict(sorted(report.skipped.items(), key=lambda kv: (-kv[1], kv[0]))),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{result['root']}: {result['files']} files, {result['definitions']} symbols, {result['imports']} imports "
          f"in {result['seconds']} s ({result['files_per_second']} files/s, {report.workers} worker(s))")
    print("languages: " + ", ".join(f"{k} {v}" for k, v in result["languages"].items()))
    if result["files_with_syntax_errors"]:
        print(f"parsed partially (syntax errors): {result['files_with_syntax_errors']} files")
    if result["skipped"]:
        print("skipped: " + ", ".join(f"{k} {v}" for k, v in result["skipped"].items()))
    return 0
