"""Stopping when the suggestion is settled: tokens and time saved on multi-line requests, same text.

Places the cursor at the end of lines of real files (where the server asks for a multi-line
suggestion), then presses Enter there (a new line with the same indentation: the usual place for a
multi-line suggestion, and a keystroke, so the prompt is cached). Each request runs through two
engines on the same model, one with ``stop_when_settled`` on and one with it off (the reference, in
the same run, alternating which goes first). It counts the generated tokens and the generation and
request times of each, and checks that the shown suggestions are identical (exit 1 if any differs).

    .venv/bin/python bench/settled_stop.py [--root DIR ...] [--positions 80] [--json out.json]

Default roots: this repository's ``sc2lsp`` package and the standard library's ``json`` and
``email`` packages (real files, none written for this bench).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # before bench/ itself: bench/finetune.py would shadow the package
    sys.path.insert(0, str(ROOT))

from sc2lsp.config import Settings  # noqa: E402
from sc2lsp.engine import Cursor, Engine  # noqa: E402

LANG = {".py": "python", ".js": "javascript", ".ts": "typescript", ".go": "go", ".rs": "rust",
        ".java": "java", ".c": "c", ".cpp": "cpp"}


def default_roots() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [ROOT / "sc2lsp", stdlib / "json", stdlib / "email"]


def positions(roots: list[Path], n: int, seed: int) -> list[tuple[Path, str, int]]:
    """``n`` cursors (file, text, offset) at the end of a line (blank lines too)."""
    files = sorted(p for r in roots for p in r.rglob("*") if p.suffix in LANG and p.is_file()
                   and p.stat().st_size < 200_000)
    if not files:
        raise SystemExit(f"no source files under {', '.join(map(str, roots))}")
    rnd, out = random.Random(seed), []
    while len(out) < n:
        path = rnd.choice(files)
        text = path.read_text(encoding="utf-8", errors="replace")
        starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
        if len(starts) < 5:
            continue
        k = rnd.randrange(1, len(starts) - 1)
        end = starts[k + 1] - 1  # the newline ending line k
        out.append((path, text, end))
    return out


def engine(model: str, threads: int, on: bool, max_tokens: int) -> Engine:
    e = Engine(Settings(model=model, threads=threads, repo_context=False, stop_when_settled=on,
                        max_tokens=max_tokens, max_prompt_ms=600_000, max_predict_ms=600_000))
    e.start().result(timeout=600)
    return e


def ask(e: Engine, path: Path, text: str, offset: int) -> dict:
    cur = Cursor(path.as_uri(), text, offset, LANG[path.suffix], str(path))
    t0 = time.perf_counter()
    s = e.complete(cur).future.result(timeout=900)
    t = s.timings
    return {"text": s.text, "source": s.source, "reason": t.get("stop_reason"),
            "tokens": t.get("generated_tokens", 0), "generate_ms": t.get("generate_ms", 0.0),
            "total_ms": (time.perf_counter() - t0) * 1000}


def enter(text: str, offset: int) -> tuple[str, int]:
    """The document after pressing Enter at ``offset`` (a line's end): the line's indentation."""
    line = text[text.rfind("\n", 0, offset) + 1: offset]
    typed = "\n" + line[: len(line) - len(line.lstrip())]
    return text[:offset] + typed + text[offset:], offset + len(typed)


def summarize(all_rows: list[dict], kind: str) -> dict:
    rows = [r for r in all_rows if r["kind"] == kind]
    def tot(side: str, key: str) -> float:
        return sum(r[side][key] for r in rows)

    early = [r for r in rows if r["on"]["reason"] == "done"]
    per = [r["on"]["generate_ms"] / r["off"]["generate_ms"] for r in early if r["off"]["generate_ms"] > 0]
    return {
        "requests": len(rows),
        "stopped_early": len(early),
        "tokens_off": tot("off", "tokens"), "tokens_on": tot("on", "tokens"),
        "tokens_ratio": tot("on", "tokens") / max(1, tot("off", "tokens")),
        "generate_ms_off": round(tot("off", "generate_ms"), 1), "generate_ms_on": round(tot("on", "generate_ms"), 1),
        "generate_ratio": tot("on", "generate_ms") / max(1e-9, tot("off", "generate_ms")),
        "total_ratio": tot("on", "total_ms") / max(1e-9, tot("off", "total_ms")),
        "median_ratio_stopped": statistics.median(per) if per else None,
        "identical": sum(r["on"]["text"] == r["off"]["text"] for r in rows),
        "shown_nonempty": sum(bool(r["off"]["text"]) for r in rows),
        "model_calls": sum(r["on"]["source"] == "model" for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"))
    ap.add_argument("--root", type=Path, action="append", help="where to take files from (repeatable)")
    ap.add_argument("--positions", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=Settings().max_tokens)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    cases = positions(args.root or default_roots(), args.positions, args.seed)
    engines = {"on": engine(args.model, args.threads, True, args.max_tokens),
               "off": engine(args.model, args.threads, False, args.max_tokens)}
    rows = []
    try:
        for i, (path, text, off) in enumerate(cases):
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for kind, (doc, at) in (("line end", (text, off)), ("after Enter", enter(text, off))):
                row = {"file": str(path), "offset": at, "kind": kind}
                for side in order:
                    row[side] = ask(engines[side], path, doc, at)
                rows.append(row)
    finally:
        for e in engines.values():
            e.close()
    summary = {kind: summarize(rows, kind) for kind in ("line end", "after Enter")}
    print(f"stopWhenSettled on vs off (the reference), {len(cases)} places, max_tokens {args.max_tokens}, "
          f"model {Path(args.model).name}")
    print("| requests | generated tokens off / on | ratio | generation ms off / on | ratio | request time ratio "
          "| stopped early | same suggestions |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, s in summary.items():
        print(f"| {kind} ({s['model_calls']} model calls) | {s['tokens_off']} / {s['tokens_on']} | {s['tokens_ratio']:.3f} "
              f"| {s['generate_ms_off']} / {s['generate_ms_on']} | {s['generate_ratio']:.3f} | {s['total_ratio']:.3f} "
              f"| {s['stopped_early']}/{s['requests']} | {s['identical']}/{s['requests']} |")
    result = {"model": args.model, "max_tokens": args.max_tokens, "seed": args.seed, "summary": summary, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if all(s["identical"] == s["requests"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
