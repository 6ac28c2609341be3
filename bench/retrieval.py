"""Retrieval eval, CrossCodeEval-style, built automatically from any repository.

    python bench/retrieval.py REPO [REPO ...] [--json] [--max-cases 150] [--model PATH | --model none]

Cases: lines that use a function, class, method or type defined in another file of the
repository *that the file's imports point at* (CrossCodeEval's cross-file API usages: an imported
name, ``module.member`` of an imported module, a name of a wildcard import or ``#include``, a
name of the same Go/Java package); at most three candidate definitions; not import lines (nor the
``} from "m";`` ending a multi-line one), not definitions, not comments or docstrings, not a name
inside a string (those two are left out after sampling, so that the other cases are those of the
runs before 2026-12-03: ``--max-cases 150`` may give a few less). The file is cut at the first
non-blank character of that line; the rest of the line is the target, and the lines below stay as
the suffix.

Per case the prompt is planned exactly as the server plans it (``plan_budget`` with the default
settings; repository context gets ``context_tokens``), and the context is gathered twice, as a
server does, on the state of a freshly started server: a new index holding the scanned files
with none of the caches a request fills (name tables, resolved imports, token counts, chunk
sets), the case's text opened in it (``apply_change``, as didOpen) and prepared
(``gather.prepare``, as the server does in the background on didOpen). Figures:

* ``first_request_recall``: the case's first request in that fresh server, with the server's
  per-provider time budgets (``REQUEST_BUDGET_MS``, or ``--provider-ms``; a smaller one stands
  for a slower or busier machine): one of the needed definitions (its first line) is inside a
  context block, i.e. in the prompt, within the budget;
* ``recall`` (warm): the complete gathering a warm-up commits (no provider time budgets), what
  the keystrokes after a pause use. Target: both >= 0.9 and equal. Reference in the same run: a
  RepoCoder-style sparse retriever (Jaccard over identifier sets of 12-line windows of every
  other file, best windows first, same token budget) -> ``recall_ratio``.
* ``providers_skipped``: first requests where a provider missed its time budget;
  ``providers_partial``: of those, where the definitions provider was late but gave the
  candidates it had ranked by then (``gather``: "late, partial").
* next-line exact match and edit similarity with context vs without (the same prefix/suffix,
  no context), greedy, through ``LlamaCppBackend`` and ``infill_prompt`` -> ``*_ratio``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sc2lsp.config import Settings  # noqa: E402
from sc2lsp.context.index import FileEntry, RepoIndex  # noqa: E402
from sc2lsp.context.languages import spec  # noqa: E402
from sc2lsp.context.gather import assemble, complete_options, prepare  # noqa: E402
from sc2lsp.context.gather import make_request  # noqa: E402
from sc2lsp.context.providers import PROVIDERS, ContextOptions, _chunks, _qualifier, _Resolver  # noqa: E402
from sc2lsp.context.symbols import IDENTIFIER  # noqa: E402
from sc2lsp.commands.context import context_budget  # noqa: E402
from sc2lsp.core.budget import approx_tokens, memo_counter  # noqa: E402
from sc2lsp.core.prompt import FimMode, infill_prompt  # noqa: E402
from sc2lsp.core.tokens import STOP_TOKENS  # noqa: E402
from sc2lsp.workspace.indexer import index_workspace  # noqa: E402

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
USE_KINDS = frozenset({"function", "method", "class", "struct", "interface", "enum", "type", "impl"})
#: The resolver's words for a resolution through an import or the package (not "by name").
THROUGH_IMPORTS = (" via ", " imported from ", " in the same package")
SKIP_LINE = re.compile(r"^\s*(?:import\b|from\b|#\s*include|use\b|package\b|export\s+\*|#|//|/\*|\*|\"\"\"|''')")


@dataclass
class Case:
    path: str
    line: int  #: 0-based
    col: int  #: characters of indentation kept in the prefix
    name: str
    target: str  #: the rest of the line
    needed: tuple[tuple[str, int], ...]  #: (path, first line) of the definitions the line uses
    at: int = 0  #: where ``name`` is in the line


def build_cases(index: RepoIndex, max_cases: int, per_file: int, seed: int) -> list[Case]:
    """Lines using a definition that the file's imports (or its package) point at, in another file."""
    by_file: dict[str, list[Case]] = {}
    for path in index.paths():
        entry = index.get(path)
        sp = spec(entry.language)
        if sp is None:
            continue
        resolver = _Resolver(make_request(index, path, entry.text, 0))
        starts = {d.start_line for d in entry.definitions}
        in_doc = False
        for ln, line in enumerate(entry.lines):
            if sp.family == "python" and line.count('"""') % 2 == 1:
                in_doc = not in_doc
                continue
            if re.fullmatch(r"[\s\w,()]*", re.sub(r"\s(#|//).*$", "", line)):
                continue  # names and commas only: the inside of a multi-line import
            if in_doc or ln in starts or not line.strip() or SKIP_LINE.match(line) or "require(" in line \
                    or len(line) > 200:
                continue
            col = len(line) - len(line.lstrip())
            for m in IDENTIFIER.finditer(line):
                name = m.group()
                if name in sp.keywords or len(name) < 3 or line[m.start() - 1:m.start()] in ("'", '"'):
                    continue  # (a name in quotes is a string: __all__ entries and the like)
                defs, how = resolver.resolve(name, _qualifier(line, m.start()))
                if not any(w in how for w in THROUGH_IMPORTS):
                    continue
                defs = [d for d in defs if d.path != path and d.kind in USE_KINDS]
                if not 1 <= len(defs) <= 3:
                    continue
                case = Case(path, ln, col, name, line[col:].rstrip(),
                            tuple(sorted({(d.path, d.start_line) for d in defs})), m.start())
                by_file.setdefault(path, []).append(case)
                break
    rng = random.Random(seed)
    pool: list[Case] = []
    for path in sorted(by_file):
        cases = by_file[path]
        pool += rng.sample(cases, min(per_file, len(cases)))
    cases = rng.sample(pool, min(max_cases, len(pool)))
    # left out after sampling, so that the other cases stay those of earlier runs
    cases = [c for c in cases if not _not_a_use(index, c)]
    return sorted(cases, key=lambda c: (c.path, c.line))


#: The end of a multi-line ``import {...} from "m"`` (the names and commas above it are skipped).
IMPORT_END = re.compile(r"^\s*\}\s*from\s*[\"']")


def _in_string(line: str, at: int) -> bool:
    """Whether ``line[at]`` is inside a quoted string that starts on this line (not inside the
    code of a template literal's ``${...}`` or a Python f-string's ``{...}``)."""
    stack: list[str] = []  # open quotes ("f" + quote for an f-string), and "{" for code inside one
    i = 0
    while i < at:
        c, top = line[i], stack[-1] if stack else None
        if c == "\\" and top not in (None, "{"):
            i += 2
            continue
        if top == "`" and line.startswith("${", i) or top and top[0] == "f" and c == "{":
            if line.startswith("{{", i):
                i += 2
                continue
            stack.append("{")
            i += 1 if c == "$" else 0
        elif top in (None, "{") and c in "'\"`":
            prefix = re.search(r"[A-Za-z]*$", line[:i]).group().lower()
            stack.append(("f" if "f" in prefix and len(prefix) <= 2 else "") + c)
        elif top == "{" and c == "}":
            stack.pop()
        elif top is not None and c == top[-1] and top != "{":
            stack.pop()
        i += 1
    return bool(stack) and stack[-1] != "{"


def _not_a_use(index: RepoIndex, case: Case) -> bool:
    """A case the selection above lets through that uses nothing: the end of a multi-line import,
    or a name inside a string (``} from "../config/Configuration.js";``)."""
    line = index.get(case.path).lines[case.line]
    return bool(IMPORT_END.match(line)) or _in_string(line, case.at)


def cut(index: RepoIndex, case: Case) -> tuple[str, str]:
    lines = index.get(case.path).lines
    prefix = "\n".join(lines[:case.line] + [lines[case.line][:case.col]])
    suffix = "\n" + "\n".join(lines[case.line + 1:])
    return prefix, suffix


def covers(blocks: list[tuple[str, int, int]], needed) -> bool:
    return any(p == np and a <= ln <= z for p, a, z in blocks for np, ln in needed)


def sparse_baseline(index: RepoIndex, case: Case, prefix: str, budget: int, count=approx_tokens) -> list[tuple[str, int, int]]:
    """RepoCoder-style: windows of other files ranked by Jaccard with the last 12 lines."""
    query = frozenset(IDENTIFIER.findall("\n".join(prefix.split("\n")[-12:])))
    scored = []
    for path in index.paths():
        if path == case.path:
            continue
        entry = index.get(path)
        for start, end, toks in _chunks(entry, 12, 6):
            inter = len(query & toks)
            if inter:
                scored.append((-inter / (len(query) + len(toks) - inter), path, start, end))
    scored.sort()
    out, spent, taken = [], 0, {}
    for _, path, start, end in scored:
        if any(start <= b and end >= a for a, b in taken.get(path, ())):
            continue
        text = "\n".join(index.get(path).lines[start:end + 1])
        cost = count(text) + count(path + "\n") + 2
        if spent + cost > budget:
            if budget - spent < 20:
                break
            continue
        spent += cost
        taken.setdefault(path, []).append((start, end))
        out.append((path, start, end))
    return out


def fresh_index(index: RepoIndex) -> RepoIndex:
    """A new index holding the same parsed files and none of the caches requests fill: what a
    server has right after its scan (the scan is not timed again)."""
    fresh = RepoIndex()
    for path in index.paths():
        e = index.get(path)
        fresh.apply_entry(FileEntry(e.path, e.language, e.text, e.symbols, e.digest))
    return fresh


def edit_similarity(a: str, b: str) -> float:
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


def evaluate(repo: Path, args, backend) -> dict:
    index = RepoIndex()
    t0 = time.perf_counter()
    report = index_workspace(index, repo)
    index_s = time.perf_counter() - t0
    cases = build_cases(index, args.max_cases, args.per_file, args.seed)
    # token counts as the server makes them: the model's tokenizer when there is a model
    raw_count = (lambda t: len(backend.tokenize(t))) if backend is not None else approx_tokens
    options = ContextOptions()
    if args.provider_ms is not None:
        options = replace(options, time_budget_ms={p: float(args.provider_ms) for p in PROVIDERS})
    rows = []
    for case in cases:
        prefix, suffix = cut(index, case)
        text = prefix + suffix
        # a fresh server: new index (no caches), a new memoising counter, the document opened and prepared
        fresh, count = fresh_index(index), memo_counter(raw_count)
        fresh.apply_change(case.path, text)
        fresh.open(case.path)
        prepare(fresh, case.path, count=count)
        plan, window = context_budget(prefix, suffix, count=count)
        t = time.perf_counter()
        first = assemble(fresh, case.path, text, len(prefix), plan.context_tokens, count=count, window=window,
                         options=options)
        ms = (time.perf_counter() - t) * 1000
        res = assemble(fresh, case.path, text, len(prefix), plan.context_tokens, count=count, window=window,
                       options=complete_options(options))
        ours = [(b.path, a, z) for b in res.blocks for a, z in b.lines]
        first_ours = [(b.path, a, z) for b in first.blocks for a, z in b.lines]
        found_by = sorted({b.provider for b in res.blocks
                           if covers([(b.path, a, z) for a, z in b.lines], case.needed)})
        base = sparse_baseline(index, case, prefix, plan.context_tokens, count)
        row = {"path": case.path, "line": case.line + 1, "name": case.name, "target": case.target,
               "recall": covers(ours, case.needed), "first_request_recall": covers(first_ours, case.needed),
               "baseline_recall": covers(base, case.needed),
               "found_by": found_by, "context_tokens": sum(b.tokens for b in res.blocks),
               "budget": plan.context_tokens, "assemble_ms": round(ms, 3), "skipped": first.skipped,
               # the blocks as the prompt holds them (``<file_sep>path\ncode``) must fit the budget
               "over_budget": any(sum(b.tokens + count(f"{b.path}\n") + 1 for b in r.blocks) > plan.context_tokens
                                  for r in (first, res))}
        if backend is not None and not args.no_em:
            p, s = plan.cut(prefix, suffix)
            for label, ctx in (("with", [b.source_file() for b in res.blocks]), ("without", [])):
                prompt = infill_prompt(p, s, path=case.path, context=ctx, mode=FimMode.SPM)
                try:
                    gen = backend.generate(prompt, max_tokens=args.max_tokens, stop=STOP_TOKENS)
                    pred = gen.text.split("\n", 1)[0].rstrip()
                except Exception as e:  # a prompt the model cannot take counts as a miss
                    pred = ""
                    row[f"error_{label}"] = str(e)
                row[f"pred_{label}"] = pred
                row[f"em_{label}"] = pred.strip() == case.target.strip()
                row[f"es_{label}"] = round(edit_similarity(pred.strip(), case.target.strip()), 4)
        rows.append(row)
    n = len(rows) or 1
    out = {
        "repo": str(repo),
        "files": report.files,
        "index_seconds": round(index_s, 2),
        "cases": len(rows),
        "recall": round(sum(r["recall"] for r in rows) / n, 3),
        "first_request_recall": round(sum(r["first_request_recall"] for r in rows) / n, 3),
        "baseline_recall": round(sum(r["baseline_recall"] for r in rows) / n, 3),
        "found_by": {p: sum(p in r["found_by"] for r in rows) for p in ("definitions", "outline", "edits", "similar")},
        "mean_context_tokens": round(statistics.mean(r["context_tokens"] for r in rows), 1) if rows else 0,
        "mean_budget": round(statistics.mean(r["budget"] for r in rows), 1) if rows else 0,
        "assemble_ms_p95": round(sorted(r["assemble_ms"] for r in rows)[int(0.95 * (len(rows) - 1))], 3) if rows else 0,
        "providers_skipped": sum(bool(r["skipped"]) for r in rows),
        "providers_partial": sum("late, partial" in r["skipped"].values() for r in rows),
        "over_budget": sum(r["over_budget"] for r in rows),
    }
    out["recall_ratio"] = round(out["recall"] / out["baseline_recall"], 2) if out["baseline_recall"] else None
    if backend is not None and not args.no_em:
        for m in ("em", "es"):
            w = sum(r[f"{m}_with"] for r in rows) / n
            wo = sum(r[f"{m}_without"] for r in rows) / n
            out[f"{m}_with"], out[f"{m}_without"] = round(w, 3), round(wo, 3)
            out[f"{m}_ratio"] = round(w / wo, 2) if wo else None
    if args.cases_out:
        with open(args.cases_out, "a") as f:
            for r in rows:
                f.write(json.dumps({"repo": str(repo), **r}) + "\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repos", nargs="+", type=Path)
    ap.add_argument("--json", action="store_true", help="print only the JSON")
    ap.add_argument("--max-cases", type=int, default=150)
    ap.add_argument("--per-file", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="a GGUF path, or 'none' for recall only")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--provider-ms", type=float, default=None,
                    help="each provider's time budget (default: the server's, REQUEST_BUDGET_MS); on a CPU shared with "
                         "other jobs a larger one measures the ranking instead of the scheduler")
    ap.add_argument("--no-em", action="store_true", help="recall only (the model only counts tokens)")
    ap.add_argument("--cases-out", default=None, help="append every case (JSON lines) to this file")
    args = ap.parse_args(argv)
    backend = None
    model = None if args.model == "none" else Path(args.model)
    if model is not None:
        if not model.is_file():
            print(f"model {model} not found: recall only (pass --model none to silence)", file=sys.stderr)
        else:
            from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings

            backend = LlamaCppBackend(model, LlamaSettings(n_ctx=4096, n_threads=args.threads))
    results = [evaluate(r, args, backend) for r in args.repos]
    doc = {"model": str(model) if backend else None, "settings_context_budget": Settings().context_budget,
           "provider_ms": args.provider_ms or ContextOptions().time_budget_ms["definitions"],
           "results": results}
    if not args.json:
        cols = ["repo", "files", "cases", "first_request_recall", "recall", "baseline_recall", "recall_ratio", "em_with", "em_without",
                "em_ratio", "es_with", "es_without", "es_ratio", "mean_context_tokens", "assemble_ms_p95", "providers_skipped", "providers_partial", "over_budget"]
        print(" | ".join(cols))
        for r in results:
            print(" | ".join(str(r.get(c, "-")) if c != "repo" else Path(r[c]).name for c in cols))
        print()
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
