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
   ``--recipe lora`` (round 3): the same samples, one epoch, lines whose name only the context holds
   drawn 3 times (``server_copy_weight=3``); ``--recipe lora-repo`` (the 2026-12-02 rows):
   repository-format samples, ``related_rate=0.5``. Several ``--checkout``/``--repo``: one prepare;
3. ``python -m finetune pretrain --config sc2-tiny-server`` (full: all weights, from sc2-tiny) or
   ``python -m finetune train --config lora-sc2-tiny-server`` (lora; ``lora-sc2-tiny``: lora-repo)
   -> ``WORK/RECIPE`` (``--train key=value``);
4. the GGUF: full -> ``sc2lsp.models.convert`` of ``WORK/full/hf`` (Q8_0, as sc2-tiny ships); lora ->
   the adapter merged into sc2-tiny, then the same; lora-repo -> ``finetune export --adapter``, served
   on sc2-tiny's GGUF through llama.cpp's ``lora_path``; ``--checkpoint`` evaluates a running
   training's latest ``ckpt.pt`` instead (an early look);
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
The ratio with / without context is measured in the same run on the same cases; the identifier
rate comes with its hits, 95% Wilson intervals, the discordant cases and a sign test, a bootstrap
interval of the ratio, per repository and pooled, and the ceiling (a model writing the name whenever
its prompt holds it), and the same figures split by where the needed name is (``by_where``: only in
the context, in the file part of the prompt, nowhere). Round 3's figures:
``bench/results/context_lift_round3.json``; round 4's (round 3's adapter continued to 720 steps, the
ablation without ``server_copy_weight``): ``bench/results/context_lift_round4.json``; round 5's (round 4b's
data plus 20 other repositories through ``finetune prepare extend=``, a fresh LoRA of 1,000 steps):
``bench/results/context_lift_round5.json``.
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
#: ``--recipe lora`` (round 3): the server's own prompts, lines only the context can answer drawn 3 times
#: (``server_copy_weight``), LoRA r=32 on sc2-tiny (``finetune/configs/lora-sc2-tiny-server.toml``)
PREPARE_LORA = ["seq_len=1024", "epochs=1", "heldout_fraction=0.2", "samples=server", "server_budget=512",
                "server_copy_weight=3", "attribution=false"]
RECIPES = {"lora": (PREPARE_LORA, "train", "lora-sc2-tiny-server", []),
           "lora-repo": (PREPARE, "train", "lora-sc2-tiny", TRAIN),
           "full": (PREPARE_SERVER, "pretrain", "sc2-tiny-server", [])}


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


def copy_repos(work: Path, args) -> list[Path]:
    """The repository roots under ``WORK/repos``: ``--repo DIR`` (a package directory) as
    ``repos/NAME/NAME``, ``--checkout DIR`` (a repository root) as ``repos/NAME``; copied once."""
    roots = []
    for src, package in [(r, True) for r in args.repo] + [(c, False) for c in args.checkout]:
        root = work / "repos" / src.name
        dest = root / src.name if package else root
        if not dest.is_dir():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        roots.append(root)
    return roots


def stages(work: Path, roots: list[Path], args) -> tuple[Path, Path | None, Path | None]:
    """(data directory, tuned GGUF, its adapter GGUF or None): each made unless it exists."""
    prepare, command, preset, train = RECIPES[args.recipe]
    data = work / "data"
    if not (data / "manifest.json").exists():
        _python("prepare", *map(str, roots), "--out", str(data), "--no-progress", *prepare, *args.prepare)
        _trim_heldout(data)
    run = work / args.recipe
    done = run / ("adapter" if command == "train" else "hf")
    if args.only == "sc2-tiny":  # the base row only: no training needed (e.g. while it runs)
        return data, None, None
    if args.checkpoint:
        return data, checkpoint_gguf(work, args.recipe)[1], None
    if not done.is_dir():
        _python(command, "--config", preset, f"data={data}", f"out={run}", *(["progress=false", "plot=false"]
                if command == "train" else []), *train, *args.train)
    if command == "pretrain" or args.recipe == "lora":  # the tuned weights as one Q8_0 GGUF, as sc2-tiny ships
        gguf = run / "export" / f"lift-{args.recipe}-q8_0.gguf"
        if not gguf.exists():
            from sc2lsp.models.convert import convert_checkpoint

            hf = done
            if command == "train":
                from finetune.export_lora import merge_adapter

                hf = merge_adapter(run, run / "merged")
            gguf.parent.mkdir(parents=True, exist_ok=True)
            convert_checkpoint(hf, gguf, "q8_0")
        return data, gguf, None
    adapter = run / "export" / "lift-lora.gguf"  # lora-repo (round 1): the adapter on sc2-tiny's GGUF
    if not adapter.exists():
        _python("export", str(run), "--name", "lift", "--adapter", "--no-register")
    return data, BASE_GGUF, adapter


def checkpoint_gguf(work: Path, recipe: str) -> tuple[str, Path]:
    """The latest checkpoint of a running training as a Q8_0 GGUF (an early look while it trains):
    ``("RECIPE@stepN", path)``; a LoRA checkpoint is merged into sc2-tiny."""
    import torch
    from transformers import PreTrainedTokenizerFast, Starcoder2ForCausalLM

    from sc2lsp.models.convert import convert_checkpoint

    run = work / recipe
    state = torch.load(run / "ckpt.pt", map_location="cpu", weights_only=False)
    out = run / f"step{state['step']}"
    gguf = out / f"lift-{recipe}-step{state['step']}-q8_0.gguf"
    if not gguf.exists():
        if "lora" in state:
            from finetune.config import from_dict
            from finetune.train import LoraTrainConfig, load_lora_model

            cfg = from_dict(LoraTrainConfig, json.loads((run / "config.json").read_text()))
            model = load_lora_model(cfg.base, cfg)
            unexpected = model.load_state_dict(state["lora"], strict=False).unexpected_keys
            if unexpected:
                raise SystemExit(f"{run / 'ckpt.pt'}: LoRA weights of another shape: {unexpected[:2]}")
            model = model.merge_and_unload()
        else:
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


def held_in(root: Path, held: list[str], multi: bool) -> list[str]:
    """The held-out files of repository ``root``, as paths inside it (``prepare`` of several
    repositories keys a file as ``NAME/path``)."""
    if not multi:
        return held
    return [k.split("/", 1)[1] for k in held if k.split("/", 1)[0] == root.name]


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
            "repo": root.name, "path": case.path, "line": case.line + 1, "name": case.name, "target": case.target.strip(),
            "recall": any(b.path == q and a <= ln <= z for b in res.blocks for a, z in b.lines for q, ln in needed),
            "name_in_context": any(case.name in f.code for f in ctx),
            "name_in_file": case.name in p or case.name in s,  # the kept prefix and suffix
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


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a rate of ``k`` in ``n``."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    mid, half = p + z * z / (2 * n), z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    return round(max(0.0, (mid - half) / (1 + z * z / n)), 3), round(min(1.0, (mid + half) / (1 + z * z / n)), 3)


def sign_test(b: int, c: int) -> float:
    """One-sided exact sign test: P(at least ``b`` of ``b + c`` discordant cases favour context | no effect)."""
    from math import comb

    n = b + c
    return round(sum(comb(n, i) for i in range(b, n + 1)) / 2 ** n, 4) if n else 1.0


def ratio_interval(hits: list[tuple[bool, bool]], resamples: int = 2000, seed: int = 0) -> tuple | None:
    """95% paired-bootstrap interval (cases resampled) of the with / without ratio of a rate; None
    when some resample has no hit without context (the ratio is unbounded there: read the counts)."""
    import random

    rng, n, ratios = random.Random(seed), len(hits), []
    for _ in range(resamples if n else 0):
        sample = [hits[rng.randrange(n)] for _ in range(n)]
        wo = sum(b for _, b in sample)
        if wo == 0:
            return None
        ratios.append(sum(a for a, _ in sample) / wo)
    if not ratios:
        return None
    ratios.sort()
    return round(ratios[int(0.025 * len(ratios))], 2), round(ratios[int(0.975 * len(ratios)) - 1], 2)


def figures(rows: list[dict]) -> dict:
    """Exact match, edit similarity and identifier rate with and without context, their ratios, and
    for the identifier rate: counts, 95% intervals, the discordant cases and a sign test."""
    n = max(1, len(rows))
    fig = {f"{m}_{label}": round(sum(r[label][m] for r in rows) / n, 3)
           for label in ("with", "without") for m in ("em", "es", "ident")}
    for m in ("em", "es", "ident"):
        wo = fig[f"{m}_without"]
        fig[f"{m}_ratio"] = round(fig[f"{m}_with"] / wo, 2) if wo else None
    hits = [(bool(r["with"]["ident"]), bool(r["without"]["ident"])) for r in rows]
    k_with, k_without = sum(a for a, _ in hits), sum(b for _, b in hits)
    only_with, only_without = sum(a and not b for a, b in hits), sum(b and not a for a, b in hits)
    fig.update(cases=len(rows), ident_hits_with=k_with, ident_hits_without=k_without,
               ident_ci_with=wilson(k_with, len(rows)), ident_ci_without=wilson(k_without, len(rows)),
               ident_only_with=only_with, ident_only_without=only_without,
               ident_sign_p=sign_test(only_with, only_without), ident_ratio_ci=ratio_interval(hits),
               lines_differ=sum(r["with"]["pred"] != r["without"]["pred"] for r in rows))
    return fig


#: where the needed name is in the "with" prompt (``by_where``): a breakdown next to the pooled figure
WHERE = {"only_in_context": lambda p: p["name_in_context"] and not p["name_in_file"],
         "in_file": lambda p: p["name_in_file"],
         "nowhere": lambda p: not p["name_in_context"] and not p["name_in_file"]}


def by_where(prompts: list[dict], rows: list[dict]) -> dict:
    """``figures`` of the cases split by where their name is: only in the context (what only context can
    answer), in the file part of the prompt (the kept prefix or suffix, with or without context), nowhere
    in the prompt. An extra breakdown; the figures over all cases stay the headline."""
    return {k: figures([r for p, r in zip(prompts, rows) if test(p)]) for k, test in WHERE.items()}


def ceiling(prompts: list[dict]) -> dict:
    """The identifier rates of a model that writes the needed name whenever its prompt holds it: with
    context (in the context or the file part) and without (in the file part only), and their ratio."""
    n = max(1, len(prompts))
    with_ = sum(p["name_in_context"] or p["name_in_file"] for p in prompts) / n
    without = sum(p["name_in_file"] for p in prompts) / n
    return {"ident_with": round(with_, 3), "ident_without": round(without, 3),
            "ident_ratio": round(with_ / without, 2) if without else None}


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
    cols = ["model", "repo", "cases", "em_with", "em_without", "es_with", "es_without", "es_ratio", "ident_with",
            "ident_without", "ident_ratio", "ident_ratio_ci", "ident_only_with", "ident_only_without", "ident_sign_p"]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for label, fig in doc["models"].items():
        parts = [("all", fig)] + sorted(fig.get("by_repo", {}).items())
        for repo, f in parts + [(f"all, name {k}", f) for k, f in fig.get("by_where", {}).items()]:
            cells = [f"{f[c]} ({f['ident_hits_' + c[6:]]}) {f['ident_ci_' + c[6:]]}" if c in ("ident_with", "ident_without")
                     else str(f.get(c)) for c in cols[3:]]
            lines.append(" | ".join([label, repo, str(f["cases"])] + cells))
    lines.append(f"cases {doc['cases']} from {doc['case_files']} held-out files ({doc['heldout_files']} held out, "
                 f"{doc['train_files']} trained on); contextBudget {doc['context_budget']}; needed definition in "
                 f"context {doc['recall']}; name in context {doc['name_in_context']}; name only in context "
                 f"{doc['name_only_in_context']}; a model writing the name whenever its prompt holds it: "
                 f"{doc['ceiling']}; training {doc['training']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/context-lift"))
    ap.add_argument("--repo", type=Path, action="append", default=[],
                    help="a package directory (copied to WORK/repos/NAME/NAME); default: networkx from site-packages")
    ap.add_argument("--checkout", type=Path, action="append", default=[],
                    help="a repository root (copied to WORK/repos/NAME); with --repo, several repositories: one "
                         "prepare, one training, the figures per repository and pooled")
    ap.add_argument("--prepare", action="append", default=[], help="key=value for finetune prepare")
    ap.add_argument("--train", action="append", default=[], help="key=value for finetune train / pretrain")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="full",
                    help="full: server-format samples, all weights (finetune/configs/sc2-tiny-server.toml); lora: "
                         "server-format samples weighted to lines only the context answers, LoRA r=32 "
                         "(lora-sc2-tiny-server.toml); lora-repo: repository-format samples, LoRA r=16 (round 1)")
    ap.add_argument("--checkpoint", action="store_true",
                    help="evaluate the running training's latest checkpoint (an early look; full or lora)")
    ap.add_argument("--model", action="append", default=[], help="extra row: LABEL=BASE.gguf[+ADAPTER.gguf]")
    ap.add_argument("--max-cases", type=int, default=0, help="0 = every case of the held-out files (per repository)")
    ap.add_argument("--per-file", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--context-budget", type=int, default=None,
                    help="the server's contextBudget setting (tokens of prefix + suffix + context); default: what "
                         "the recipe trained on, 512 (full, lora: server_budget) or 896 (lora-repo: 1,024-token rows)")
    ap.add_argument("--only", default=None, help="run this model label only (fills the cache; parallel runs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print only the JSON")
    ap.add_argument("--rows", action="store_true", help="keep every case's predictions in the JSON")
    args = ap.parse_args(argv)
    if args.context_budget is None:
        args.context_budget = 896 if args.recipe == "lora-repo" else 512
    if args.checkpoint and args.recipe == "lora-repo":
        ap.error("--checkpoint needs --recipe full or lora")
    if not args.repo and not args.checkout:
        import importlib.util

        if importlib.util.find_spec("networkx") is None:
            ap.error("give --repo or --checkout (networkx is not installed)")
        args.repo = [Path(__import__("networkx").__file__).parent]
    roots = copy_repos(args.work, args)
    data, tuned, adapter = stages(args.work, roots, args)
    held, n_train = heldout(data)
    from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings

    counter = LlamaCppBackend(BASE_GGUF, LlamaSettings(n_threads=1, state_cache_mb=0))
    count = memo_counter(lambda t: len(counter.tokenize(t)))
    prompts, n_files = [], 0
    for root in roots:
        got, files = build_prompts(root, held_in(root, held, len(roots) > 1), count, args)
        prompts, n_files = prompts + got, n_files + files
    counter.close()
    label = (checkpoint_gguf(args.work, args.recipe)[0] if args.checkpoint else args.recipe) if tuned else None
    models = [("sc2-tiny", BASE_GGUF, None)] + ([(label, tuned, adapter)] if tuned else [])
    models += [_model_spec(s) for s in args.model]
    n = max(1, len(prompts))
    doc = {"repos": [str(r) for r in roots], "cases": len(prompts), "case_files": n_files, "heldout_files": len(held),
           "train_files": n_train, "recall": round(sum(p["recall"] for p in prompts) / n, 3),
           "name_in_context": round(sum(p["name_in_context"] for p in prompts) / n, 3),
           "name_only_in_context": round(sum(p["name_in_context"] and not p["name_in_file"] for p in prompts) / n, 3),
           "mean_context_tokens": round(sum(p["context_tokens"] for p in prompts) / n, 1),
           "ceiling": ceiling(prompts),
           "context_budget": args.context_budget, "training": training(args.work / args.recipe), "models": {}}
    for label, gguf, lora in models:
        if args.only and label != args.only:
            continue
        run = cached_run(args.work, gguf, lora, prompts, args)
        rows = run["rows"]
        fig = {**figures(rows), "ms_per_generation": run["ms_per_generation"]}
        fig["by_where"] = by_where(prompts, rows)
        if len(roots) > 1:
            fig["by_repo"] = {r.name: figures([x for p, x in zip(prompts, rows) if p["repo"] == r.name]) for r in roots}
        if args.rows:
            fig["rows"] = [{"repo": p["repo"], "path": p["path"], "line": p["line"], "name": p["name"],
                            "name_in_context": p["name_in_context"], "name_in_file": p["name_in_file"],
                            "target": p["target"], **r} for p, r in zip(prompts, rows)]
        doc["models"][label] = fig
    if not args.json:
        print(table(doc) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
