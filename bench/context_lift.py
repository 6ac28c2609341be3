"""Does repository context help completions? Base sc2-tiny vs sc2-tiny tuned on a repository, with vs without context.

One command (each stage is skipped when its output exists, so it resumes after a kill; on 2
shared cores: prepare a few minutes, training capped by its preset, eval ~1-3 s per generation,
2 per case and model; generations are cached in ``WORK/results/``)::

    nice -n 5 python bench/context_lift.py --work /tmp/lift [--recipe full|lora] [--json]

Stages, all through the project's own code:

1. ``WORK/repos/networkx/networkx``: networkx copied from this interpreter's site-packages (a
   real repository the models never saw; ``--repo DIR`` takes another one);
2. ``python -m finetune prepare`` -> ``WORK/data``, 20% of the files held out whole
   (``heldout_files.json``, never in ``train.npy``; ``--prepare key=value``).
   ``--recipe full`` (default): ``samples=server`` (``finetune/data/server_samples.py``): per line
   of a training file that uses another file's name through its imports, the server's own prompt
   at its first non-blank character (``plan_budget`` with ``server_budget`` tokens of text, the
   context ``gather.assemble`` commits, over an index of the training files only; 20% of them
   without context), then the line; the loss is on the line only (``train_mask.npy``).
   ``--recipe lora`` (the 2026-12-02 rows): repository-format samples, ``related_rate=0.5``;
3. ``python -m finetune pretrain --config sc2-tiny-server`` (full: all weights, from sc2-tiny) or
   ``python -m finetune train --config lora-sc2-tiny`` (lora) -> ``WORK/RECIPE`` (``--train key=value``);
4. the GGUF: full -> ``sc2lsp.models.convert`` of ``WORK/full/hf`` (Q8_0, as sc2-tiny ships);
   lora -> ``finetune export --adapter``, served on sc2-tiny's GGUF through llama.cpp's ``lora_path``;
   ``--checkpoint`` evaluates a running full training's latest ``ckpt.pt`` instead (an early look);
5. eval: cases from the held-out files only, built by ``bench/retrieval.py``'s case builder (a
   line that uses a definition of another file through its imports, cut at its first non-blank
   character; the rest of the line is the target). The workspace index holds every file of the
   repository, as the server of that checkout would; the context is the server's own gathering
   (``gather.assemble``, complete, as a warm-up commits it) in the budget the engine plans
   (``plan_budget`` with ``--context-budget`` tokens, counted by the model's tokenizer), and the
   prompt is the engine's (``infill_prompt``, SPM, ``<repo_name>`` = the folder's name). Without
   context: the same prompt with no context blocks. Greedy, ``--max-tokens`` tokens, first line compared.

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
#: ``--recipe lora`` (2026-12-02): repository-format samples, related files first, LoRA r=16
PREPARE = ["seq_len=1024", "epochs=1", "heldout_fraction=0.2", "related_rate=0.5", "attribution=false"]
TRAIN = ["r=16", "alpha=32", "lr=2e-3", "max_steps=120", "max_minutes=25", "eval_every=40", "save_every=20",
         "warmup_steps=10", "batch_size=4", "eval_batches=4"]
#: ``--recipe full`` (2026-12-03): the server's own prompts (``data/server_samples.py``) with the loss on the
#: completed line, all weights trained (``finetune/configs/sc2-tiny-server.toml``)
PREPARE_SERVER = ["seq_len=1024", "epochs=2", "heldout_fraction=0.2", "samples=server", "server_budget=512",
                  "attribution=false"]
RECIPES = {"lora": (PREPARE, "train", "lora-sc2-tiny", TRAIN), "full": (PREPARE_SERVER, "pretrain", "sc2-tiny-server", [])}


def _python(*args: str) -> None:
    cmd = [sys.executable, "-m", "finetune", *args]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=None)


def _trim_heldout(data: Path, keep: int = 32) -> None:
    """Training's held-out loss (not a figure of this bench) runs over every held-out row twice: the
    first ``keep`` rows keep it to seconds; all rows stay in ``heldout-all.npy`` (and their mask)."""
    import numpy as np

    for name in ("heldout", "heldout_mask"):
        if (data / f"{name}.npy").exists():
            rows = np.load(data / f"{name}.npy")
            np.save(data / f"{name}-all.npy", rows)
            np.save(data / f"{name}.npy", rows[:keep])


def stages(work: Path, repo: Path, args) -> tuple[Path, Path, Path, Path | None]:
    """(repository root, data directory, tuned GGUF, its adapter GGUF or None): each made unless it exists."""
    root = work / "repos" / repo.name
    if not (root / repo.name).is_dir():
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(repo, root / repo.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    prepare, command, preset, train = RECIPES[args.recipe]
    data = work / "data"
    if not (data / "manifest.json").exists():
        _python("prepare", str(root), "--out", str(data), "--no-progress", *prepare, *args.prepare)
        _trim_heldout(data)
    run = work / args.recipe
    done = run / ("adapter" if command == "train" else "hf")
    if args.only == "sc2-tiny":  # the base row only: no training needed (e.g. while it runs)
        return root, data, None, None
    if args.checkpoint:
        return root, data, *checkpoint_gguf(work, args.recipe)[1:], None
    if not done.is_dir():
        _python(command, "--config", preset, f"data={data}", f"out={run}", *(["progress=false", "plot=false"]
                if command == "train" else []), *train, *args.train)
    if command == "pretrain":
        gguf = run / "export" / "lift-full-q8_0.gguf"
        if not gguf.exists():
            from sc2lsp.models.convert import convert_checkpoint

            gguf.parent.mkdir(parents=True, exist_ok=True)
            convert_checkpoint(done, gguf, "q8_0")
        return root, data, gguf, None
    adapter = run / "export" / "lift-lora.gguf"
    if not adapter.exists():
        _python("export", str(run), "--name", "lift", "--adapter", "--no-register")
    return root, data, BASE_GGUF, adapter


def checkpoint_gguf(work: Path, recipe: str) -> tuple[str, Path]:
    """The latest checkpoint of a running ``--recipe full`` run as a GGUF (an early look while it
    trains): ``("full@stepN", path)``."""
    import torch
    from transformers import PreTrainedTokenizerFast, Starcoder2ForCausalLM

    from sc2lsp.models.convert import convert_checkpoint

    run = work / recipe
    state = torch.load(run / "ckpt.pt", map_location="cpu", weights_only=False)
    out = run / f"step{state['step']}"
    gguf = out / f"lift-full-step{state['step']}-q8_0.gguf"
    if not gguf.exists():
        model = Starcoder2ForCausalLM.from_pretrained(str(ROOT / "models" / "sc2-tiny" / "hf"))
        model.load_state_dict(state["model"])
        model.save_pretrained(out / "hf", safe_serialization=True)
        PreTrainedTokenizerFast.from_pretrained(str(work / "data" / "tokenizer")).save_pretrained(out / "hf")
        convert_checkpoint(out / "hf", gguf, "q8_0")
    return f"{recipe}@step{state['step']}", gguf


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


def training(run: Path) -> dict:
    """What the tuned row was trained on: steps, tokens, held-out loss before and after (``metrics.jsonl``)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    held = [r for r in rows if "heldout_loss" in r]
    last = rows[-1]
    return {"steps": last["step"], "tokens": last.get("tokens", 0),
            "heldout_loss": [held[0]["heldout_loss"], held[-1]["heldout_loss"]] if held else None,
            "heldout_loss_step": held[-1]["step"] if held else None}


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
                 f"{doc['train_files']} trained on); contextBudget {doc['context_budget']}; needed definition in "
                 f"context {doc['recall']}; name in context {doc['name_in_context']}; training {doc['training']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/context-lift"))
    ap.add_argument("--repo", type=Path, default=Path(__import__("networkx").__file__).parent
                    if __import__("importlib").util.find_spec("networkx") else None)
    ap.add_argument("--prepare", action="append", default=[], help="key=value for finetune prepare")
    ap.add_argument("--train", action="append", default=[], help="key=value for finetune train / pretrain")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="full",
                    help="full: server-format samples, all weights (finetune/configs/sc2-tiny-server.toml); lora: "
                         "repository-format samples, LoRA r=16 (the 2026-12-02 rows)")
    ap.add_argument("--checkpoint", action="store_true",
                    help="--recipe full: evaluate the running training's latest checkpoint (an early look)")
    ap.add_argument("--model", action="append", default=[], help="extra row: LABEL=BASE.gguf[+ADAPTER.gguf]")
    ap.add_argument("--max-cases", type=int, default=0, help="0 = every case of the held-out files")
    ap.add_argument("--per-file", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--context-budget", type=int, default=None,
                    help="the server's contextBudget setting (tokens of prefix + suffix + context); default: what "
                         "the recipe trained on, 512 (full: server_budget) or 896 (lora: 1,024-token rows)")
    ap.add_argument("--only", default=None, help="run this model label only (fills the cache; parallel runs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print only the JSON")
    ap.add_argument("--rows", action="store_true", help="keep every case's predictions in the JSON")
    args = ap.parse_args(argv)
    if args.context_budget is None:
        args.context_budget = 512 if args.recipe == "full" else 896
    if args.checkpoint and args.recipe != "full":
        ap.error("--checkpoint needs --recipe full")
    root, data, tuned, adapter = stages(args.work, args.repo, args)
    held, n_train = heldout(data)
    from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings

    counter = LlamaCppBackend(BASE_GGUF, LlamaSettings(n_threads=1, state_cache_mb=0))
    count = memo_counter(lambda t: len(counter.tokenize(t)))
    prompts, n_files = build_prompts(root, held, count, args)
    counter.close()
    label = (checkpoint_gguf(args.work, args.recipe)[0] if args.checkpoint else args.recipe) if tuned else None
    models = [("sc2-tiny", BASE_GGUF, None)] + ([(label, tuned, adapter)] if tuned else [])
    models += [_model_spec(s) for s in args.model]
    n = max(1, len(prompts))
    doc = {"repo": str(root), "cases": len(prompts), "case_files": n_files, "heldout_files": len(held),
           "train_files": n_train, "recall": round(sum(p["recall"] for p in prompts) / n, 3),
           "name_in_context": round(sum(p["name_in_context"] for p in prompts) / n, 3),
           "mean_context_tokens": round(sum(p["context_tokens"] for p in prompts) / n, 1),
           "context_budget": args.context_budget, "training": training(args.work / args.recipe), "models": {}}
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
