"""Does repository context help completions? Base sc2-tiny vs sc2-tiny + LoRA, with vs without context.

One command (each stage is skipped when its output exists, so it resumes after a kill; on 2
shared cores: prepare ~1.5 min, training capped at 25 min, export seconds, eval ~3.5 s per
generation, 2 per case and model; generations are cached in ``WORK/results/``)::

    nice -n 5 python bench/context_lift.py --work /tmp/lift [--json]

Stages, all through the project's own code:

1. ``WORK/repos/networkx/networkx``: networkx copied from this interpreter's site-packages (a
   real repository the models never saw; ``--repo DIR`` takes another one);
2. ``python -m finetune prepare`` -> ``WORK/data`` (the repository-format samples of
   ``finetune/data/pack.py``, built by ``sc2lsp/core/prompt.py``; ``--prepare key=value``, by
   default ``related_rate=0.5``: half the fragments that use other files' definitions come after
   the fragments defining them, as the server puts context before the file); held-out files are
   whole files (``heldout_files.json``), never in ``train.npy``;
3. ``python -m finetune train --config lora-sc2-tiny`` -> ``WORK/lora`` (``--train key=value``);
4. ``python -m finetune export WORK/lora --adapter --no-register`` -> the LoRA adapter GGUF,
   served on sc2-tiny's GGUF through llama.cpp's ``lora_path`` as the server serves it;
5. eval: cases from the held-out files only, built by ``bench/retrieval.py``'s case builder (a
   line that uses a definition of another file through its imports, cut at its first non-blank
   character; the rest of the line is the target). The workspace index holds every file of the
   repository, as the server of that checkout would; the context is the server's own gathering
   (``gather.assemble``, complete, as a warm-up commits it) in the budget the engine plans
   (``plan_budget``, tokens counted by the model's tokenizer), and the prompt is the engine's
   (``infill_prompt``, SPM, ``<repo_name>`` = the folder's name). Without context: the same
   prompt with no context blocks. Greedy, ``--max-tokens`` tokens, first line compared.

Figures per model and prompt: next-line exact match, edit similarity (Levenshtein), and the
identifier rate: the suggestion contains the cross-file name the line uses (``Case.name``).
The ratio with / without context is measured in the same run on the same cases.
``--model LABEL=BASE.gguf[+ADAPTER.gguf]`` adds rows (e.g. a merged or fully fine-tuned GGUF).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from retrieval import build_cases, cut, edit_similarity, fresh_index  # noqa: E402

from sc2lsp.commands.context import context_budget  # noqa: E402
from sc2lsp.context.gather import assemble, complete_options, prepare  # noqa: E402
from sc2lsp.context.index import RepoIndex  # noqa: E402
from sc2lsp.core.budget import memo_counter  # noqa: E402
from sc2lsp.core.prompt import FimMode, infill_prompt  # noqa: E402
from sc2lsp.core.tokens import STOP_TOKENS  # noqa: E402
from sc2lsp.workspace.indexer import index_workspace  # noqa: E402

BASE_GGUF = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
PREPARE = ["seq_len=1024", "epochs=1", "heldout_fraction=0.2", "related_rate=0.5", "attribution=false"]
TRAIN = ["r=16", "alpha=32", "lr=2e-3", "max_steps=120", "max_minutes=25", "eval_every=40", "save_every=20",
         "warmup_steps=10", "batch_size=4", "eval_batches=4"]


def _python(*args: str) -> None:
    cmd = [sys.executable, "-m", "finetune", *args]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=None)


def stages(work: Path, repo: Path, args) -> tuple[Path, Path, Path]:
    """(repository root, data directory, adapter GGUF): each made unless it exists."""
    root = work / "repos" / repo.name
    if not (root / repo.name).is_dir():
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(repo, root / repo.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    data = work / "data"
    if not (data / "manifest.json").exists():
        _python("prepare", str(root), "--out", str(data), "--no-progress", *PREPARE, *args.prepare)
        # training's held-out loss (not a figure of this bench) runs over every held-out row twice:
        # 32 rows keep it to seconds; the rows are kept in heldout-all.npy
        import numpy as np

        rows = np.load(data / "heldout.npy")
        np.save(data / "heldout-all.npy", rows)
        np.save(data / "heldout.npy", rows[:32])
    run = work / "lora"
    if not (run / "adapter").is_dir():
        _python("train", "--config", "lora-sc2-tiny", f"data={data}", f"out={run}", "progress=false",
                "plot=false", *TRAIN, *args.train)
    adapter = run / "export" / "lift-lora.gguf"
    if not adapter.exists():
        _python("export", str(run), "--name", "lift", "--adapter", "--no-register")
    return root, data, adapter


def heldout(data: Path) -> tuple[list[str], int]:
    """The held-out files, after checking that none of them is a training file (leakage)."""
    manifest = json.loads((data / "manifest.json").read_text())
    held = json.loads((data / "heldout_files.json").read_text())["files"]
    train = {r["path"] for r in manifest["files"] if r.get("split") == "train"}
    leak = sorted(set(held) & train)
    if leak:
        raise SystemExit(f"held-out files in training: {leak[:3]}")
    return held, len(train)


def build_prompts(root: Path, held: list[str], count, args) -> tuple[list[dict], int]:
    """Per case: the engine's prompt with the server's context and the same prompt without it."""
    index = RepoIndex()
    index_workspace(index, root)
    held_set = set(held)
    cases = [c for c in build_cases(index, 10 ** 9, args.per_file, args.seed) if c.path in held_set]
    cases = cases[:args.max_cases] if args.max_cases else cases
    out = []
    for case in cases:
        prefix, suffix = cut(index, case)
        text = prefix + suffix
        fresh = fresh_index(index)  # the server's index with the case's text opened in it
        fresh.apply_change(case.path, text)
        fresh.open(case.path)
        prepare(fresh, case.path, count=count)
        plan, window = context_budget(prefix, suffix, total=args.context_budget, count=count)
        res = assemble(fresh, case.path, text, len(prefix), plan.context_tokens, count=count, window=window,
                       options=complete_options())
        ctx = [b.source_file() for b in res.blocks]
        p, s = plan.cut(prefix, suffix)
        needed = {(q, ln) for q, ln in case.needed}
        out.append({
            "path": case.path, "line": case.line + 1, "name": case.name, "target": case.target.strip(),
            "recall": any(b.path == q and a <= ln <= z for b in res.blocks for a, z in b.lines for q, ln in needed),
            "name_in_context": any(case.name in f.code for f in ctx),
            "context_tokens": sum(b.tokens for b in res.blocks),
            "prompt_with": infill_prompt(p, s, path=case.path, repo=root.name, context=ctx, mode=FimMode.SPM),
            "prompt_without": infill_prompt(p, s, path=case.path, repo=root.name, context=(), mode=FimMode.SPM),
            "heal_bytes": len(p.encode("utf-8")),  # the engine heals the kept prefix (SPM puts it last)
        })
    return out, len({c.path for c in cases})


def run_model(gguf: Path, lora: Path | None, prompts: list[dict], args) -> dict:
    """Greedy first lines for every prompt through llama.cpp: ``{"rows": [...], "ms_per_generation": ms}``."""
    from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings

    backend = LlamaCppBackend(gguf, LlamaSettings(n_ctx=4096, n_threads=args.threads, state_cache_mb=0,
                                                  lora_path=str(lora) if lora else None))
    rows = []
    t0 = time.perf_counter()
    try:
        for p in prompts:
            row = {}
            for label in ("with", "without"):
                gen = backend.generate(p[f"prompt_{label}"], max_tokens=args.max_tokens, stop=STOP_TOKENS,
                                       heal_bytes=p["heal_bytes"])
                pred = gen.text.split("\n", 1)[0].strip()
                row[label] = {"pred": pred, "em": pred == p["target"],
                              "es": round(edit_similarity(pred, p["target"]), 4), "ident": p["name"] in pred}
            rows.append(row)
    finally:
        backend.close()
    return {"rows": rows, "ms_per_generation": round((time.perf_counter() - t0) * 1000 / max(1, 2 * len(rows)), 1)}


def cached_run(work: Path, gguf: Path, lora: Path | None, prompts: list[dict], args) -> dict:
    """``run_model``, kept in ``WORK/results/`` under a key of the model files, the prompts and
    ``--max-tokens`` (greedy decoding: the same inputs give the same lines), so a rerun only
    generates for what changed."""
    h = hashlib.sha256(json.dumps([p[k] for p in prompts for k in ("prompt_with", "prompt_without")]).encode())
    for f in (gguf, lora):
        if f is not None:
            st = f.stat()
            h.update(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(f"{args.max_tokens}:{[p['heal_bytes'] for p in prompts]}".encode())
    path = work / "results" / f"{h.hexdigest()[:16]}.json"
    if path.exists():
        return json.loads(path.read_text())
    out = run_model(gguf, lora, prompts, args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def figures(rows: list[dict]) -> dict:
    """Exact match, edit similarity and identifier rate with and without context, and their ratios."""
    n = max(1, len(rows))
    fig = {f"{m}_{label}": round(sum(r[label][m] for r in rows) / n, 3)
           for label in ("with", "without") for m in ("em", "es", "ident")}
    for m in ("em", "es", "ident"):
        wo = fig[f"{m}_without"]
        fig[f"{m}_ratio"] = round(fig[f"{m}_with"] / wo, 2) if wo else None
    return fig


def _model_spec(spec: str) -> tuple[str, Path, Path | None]:
    label, _, files = spec.partition("=")
    gguf, _, lora = files.partition("+")
    return label, Path(gguf), Path(lora) if lora else None


def table(doc: dict) -> str:
    cols = ["model", "em_with", "em_without", "es_with", "es_without", "ident_with", "ident_without", "ident_ratio"]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for label, fig in doc["models"].items():
        lines.append(" | ".join([label] + [str(fig[c]) for c in cols[1:]]))
    lines.append(f"cases {doc['cases']} from {doc['case_files']} held-out files ({doc['heldout_files']} held out, "
                 f"{doc['train_files']} trained on); needed definition in context {doc['recall']}; "
                 f"name in context {doc['name_in_context']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/context-lift"))
    ap.add_argument("--repo", type=Path, default=Path(__import__("networkx").__file__).parent
                    if __import__("importlib").util.find_spec("networkx") else None)
    ap.add_argument("--prepare", action="append", default=[], help="key=value for finetune prepare")
    ap.add_argument("--train", action="append", default=[], help="key=value for finetune train")
    ap.add_argument("--model", action="append", default=[], help="extra row: LABEL=BASE.gguf[+ADAPTER.gguf]")
    ap.add_argument("--max-cases", type=int, default=0, help="0 = every case of the held-out files")
    ap.add_argument("--per-file", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--context-budget", type=int, default=896,
                    help="the server's contextBudget setting (tokens of prefix + suffix + context); sc2-tiny and "
                         "the LoRA rows were trained on 1,024-token sequences")
    ap.add_argument("--only", default=None, help="run this model label only (fills the cache; parallel runs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print only the JSON")
    ap.add_argument("--rows", action="store_true", help="keep every case's predictions in the JSON")
    args = ap.parse_args(argv)
    root, data, adapter = stages(args.work, args.repo, args)
    held, n_train = heldout(data)
    from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings

    counter = LlamaCppBackend(BASE_GGUF, LlamaSettings(n_threads=1, state_cache_mb=0))
    count = memo_counter(lambda t: len(counter.tokenize(t)))
    prompts, n_files = build_prompts(root, held, count, args)
    counter.close()
    models = [("sc2-tiny", BASE_GGUF, None), ("lora", BASE_GGUF, adapter)]
    models += [_model_spec(s) for s in args.model]
    n = max(1, len(prompts))
    doc = {"repo": str(root), "cases": len(prompts), "case_files": n_files, "heldout_files": len(held),
           "train_files": n_train, "recall": round(sum(p["recall"] for p in prompts) / n, 3),
           "name_in_context": round(sum(p["name_in_context"] for p in prompts) / n, 3),
           "mean_context_tokens": round(sum(p["context_tokens"] for p in prompts) / n, 1), "models": {}}
    for label, gguf, lora in models:
        if args.only and label != args.only:
            continue
        run = cached_run(args.work, gguf, lora, prompts, args)
        rows = run["rows"]
        fig = {**figures(rows), "ms_per_generation": run["ms_per_generation"]}
        if args.rows:
            fig["rows"] = [{"path": p["path"], "line": p["line"], "name": p["name"], "target": p["target"], **r}
                           for p, r in zip(prompts, rows)]
        doc["models"][label] = fig
    if not args.json:
        print(table(doc) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
