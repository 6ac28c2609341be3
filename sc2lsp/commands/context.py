"""``sc2lsp context FILE --line L --col C``: the repository context blocks the server would put in
the prompt at that position, with the provider that chose each.

The budget is the server's: ``plan_budget`` over the prefix and suffix with the default settings
(``context_budget``, ``context_length``, ``max_tokens``) and the model's tokenizer (``--approx``:
characters / 4, no model); the blocks are what ``gather_context`` returns for the part of the
file the prompt does not already hold, gathered completely (no provider time budgets), as the
server's warm-ups gather the context its keystrokes then use. A provider that failed, or a file
too large for the index, is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .complete import read_source, split_at
from ..errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path)
    p.add_argument("--line", type=int, required=True, help="1-based line of the cursor")
    p.add_argument("--col", type=int, required=True, help="1-based column of the cursor (characters)")
    p.add_argument("--root", type=Path, default=None,
                   help="workspace folder (default: the nearest folder above FILE holding .git, else FILE's folder)")
    p.add_argument("--budget", type=int, default=None, help="prompt tokens of text (default: the server's context_budget)")
    p.add_argument("--language-id", default=None, help="LSP language id (default: from the extension)")
    p.add_argument("--model", default="sc2-tiny",
                   help="count tokens with this model's tokenizer, as the server does (default: sc2-tiny)")
    p.add_argument("--approx", action="store_true", help="count tokens as characters / 4 (no model needed)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def find_root(file: Path) -> Path:
    for d in file.resolve().parents:
        if (d / ".git").exists():
            return d
    return file.resolve().parent


def context_budget(prefix: str, suffix: str, total: int | None = None, count=None, n_ctx: int | None = None):
    """(plan, window offsets) as the engine plans a prompt with the default settings."""
    from ..config import Settings
    from ..core.budget import approx_tokens, plan_budget, prompt_budget

    s = Settings()
    total = total or prompt_budget(n_ctx or s.context_length, s.max_tokens, s.context_budget)[1]
    plan = plan_budget(prefix, suffix, total, count or approx_tokens)
    return plan, (plan.prefix_start, len(prefix) + plan.suffix_end)


def token_counter(model: str, approx: bool):
    """(count, n_ctx, what): the model's tokenizer as the server uses it, else characters / 4."""
    from ..core.budget import approx_tokens, memo_counter

    if approx:
        return approx_tokens, None, "characters / 4"
    try:
        from ..backends.factory import load_backend
        from ..config import Settings

        backend = load_backend(Settings(model=model, token_healing=False))
    except UserError as e:
        print(f"note: {e}; counting tokens as characters / 4", file=sys.stderr)
        return approx_tokens, None, "characters / 4"
    return memo_counter(backend.token_counter), backend.n_ctx, f"{backend.name} tokenizer"


def run(args: argparse.Namespace) -> int:
    from ..context.gather import assemble, complete_options
    from .index import build

    file = args.file
    text = read_source(file)
    prefix, suffix = split_at(text, args.line, args.col)
    root = (args.root or find_root(file)).resolve()
    rel = os.path.relpath(file.resolve(), root).replace(os.sep, "/")
    if rel.startswith(".."):
        raise UserError(f"{file} is not inside the workspace {root}")
    index, report = build(root, show_progress=not args.json)
    count, n_ctx, counted_by = token_counter(args.model, args.approx)
    plan, window = context_budget(prefix, suffix, args.budget, count, n_ctx)
    res = assemble(index, rel, text, len(prefix), plan.context_tokens, count=count, window=window,
                   language_id=args.language_id, options=complete_options())
    out = {
        "file": rel,
        "root": str(root),
        "cursor": {"line": args.line, "col": args.col, "offset": len(prefix)},
        "context_budget": plan.context_tokens,
        "tokens_counted_by": counted_by,
        "window_lines": [text.count("\n", 0, window[0]) + 1, text.count("\n", 0, window[1]) + 1],
        "blocks": [{"provider": b.provider, "path": b.path, "tokens": b.tokens,
                    "lines": [[a + 1, z + 1] for a, z in b.lines], "reason": b.reason, "code": b.code}
                   for b in res.blocks],
        "timings_ms": res.timings_ms,
        "skipped": res.skipped,
        "index": {"files": report.files, "seconds": round(report.seconds, 3)},
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    used = sum(b.tokens for b in res.blocks)
    print(f"{rel}:{args.line}:{args.col}  workspace {root} ({report.files} files indexed in {report.seconds:.2f} s)")
    print(f"prompt holds lines {out['window_lines'][0]}-{out['window_lines'][1]} of this file; "
          f"context budget {plan.context_tokens} tokens ({counted_by}), {used} used by {len(res.blocks)} block(s)")
    for b in out["blocks"]:
        ranges = ", ".join(f"{a}-{z}" if a != z else f"{a}" for a, z in b["lines"])
        print(f"\n=== [{b['provider']}] {b['path']} lines {ranges} ({b['tokens']} tokens): {b['reason']}")
        print(f"<file_sep>{b['path']}\n{b['code']}", end="")
    if res.skipped:
        print("\nskipped providers: " + ", ".join(f"{k} ({v})" for k, v in res.skipped.items()))
    else:
        print("\nnothing skipped (every provider ran to the end, as in the server's warm-ups)")
    print("\nprovider times (ms): " + ", ".join(f"{k} {v}" for k, v in sorted(res.timings_ms.items())))
    return 0
