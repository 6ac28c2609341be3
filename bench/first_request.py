"""The first suggestion in a large workspace right after the server starts (an editor restoring its
tabs), over a real ``sc2lsp serve`` (stdio, like an editor).

    python bench/first_request.py [--repo PATH] [--files 5000] [--runs 3] [--json FILE]

Without ``--repo`` a repository of ``--files`` indexable files is put together from the sources
installed on this machine (``context_speed.make_repo``). Each run starts a fresh server, sends
``initialize``/``initialized``, opens a source file and asks for a completion at once, the way an
editor does when it restores a tab and the user types: that request waits for the folder's scan
(watcher started, every file read and judged) and the document's preparation, so that its prompt
has the repository context.

Reference, measured in the same run: the same request in a server whose folder was already
indexed (opened only after ``status`` says so), i.e. what the first request costs with no scan in
its way. The figure is the ratio first-at-start / first-after-indexing, with the scan's own time
(``status``'s ``index_seconds``) beside it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sc2lsp.lsp.rawclient import StdioClient  # noqa: E402

LANGUAGES = {".py": "python", ".js": "javascript", ".ts": "typescript", ".go": "go", ".rs": "rust",
             ".java": "java", ".c": "c", ".cpp": "cpp"}


def pick_files(repo: Path, n: int, seed: int) -> list[Path]:
    files = [p for p in sorted(repo.rglob("*")) if p.suffix in LANGUAGES and p.is_file()
             and "node_modules" not in p.parts and 2_000 < p.stat().st_size < 60_000]
    return random.Random(seed).sample(files, min(n, len(files)))


def one(repo: Path, path: Path, model: str, after_index: bool) -> dict:
    """A fresh server; open ``path`` (at once, or once the folder is indexed) and ask at once."""
    server = StdioClient([sys.executable, "-m", "sc2lsp.cli", "serve"], cwd=str(ROOT))
    try:
        t0 = time.perf_counter()
        server.initialize(repo, {"model": model, "threads": 1, "warmUp": False})
        if after_index:
            # another document first: servers before 2026-12-03 started the scan at the first didOpen
            other = next(p for p in sorted(repo.rglob("*" + path.suffix)) if p != path and p.is_file())
            server.open(other.as_uri(), other.read_text(encoding="utf-8", errors="replace"), LANGUAGES[path.suffix])
            while not (ws := server.status()["server"]["workspaces"]) or not ws[0]["indexed"]:
                time.sleep(0.02)
            server.wait_ready(300)
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = text.split("\n")
        line = len(lines) // 2
        server.open(path.as_uri(), text, LANGUAGES[path.suffix])
        t1 = time.perf_counter()
        server.inline(path.as_uri(), line, len(lines[line].encode("utf-16-le")) // 2, timeout=300)
        ms = (time.perf_counter() - t1) * 1000
        st = server.status()
        last = st.get("last") or {}
        ws = st["server"]["workspaces"]
        return {"file": str(path.relative_to(repo)), "ms": round(ms, 1), "engine_ms": last.get("total_ms"),
                "context_files": last.get("context_files"), "context_complete": last.get("context_complete"),
                "asked_at_s": round(t1 - t0, 3), "index_seconds": ws[0].get("index_seconds") if ws else None,
                "indexed_files": ws[0].get("files") if ws else None}
    finally:
        server.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=None)
    ap.add_argument("--files", type=int, default=5000, help="size of the built repository (without --repo)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model", default="sc2-tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sc2lsp-first-") as tmp:
        repo = args.repo
        if repo is None:
            from context_speed import make_repo

            repo = Path(tmp) / "repo"
            make_repo(repo, args.files, [])
        repo = repo.resolve()
        rows = []
        for i, path in enumerate(pick_files(repo, args.runs, args.seed)):
            # alternate which goes first, so a warmer disk cache does not favour one side
            order = (False, True) if i % 2 == 0 else (True, False)
            got = {after: one(repo, path, args.model, after) for after in order}
            rows.append({"at_start": got[False], "after_index": got[True],
                         "ratio": round(got[False]["ms"] / max(got[True]["ms"], 1e-3), 2)})
            a, b = got[False], got[True]
            print(f"{a['file'][:48]:48s}  at start {a['ms']:8.1f} ms (context {a['context_files']}, "
                  f"scan {a['index_seconds'] or float('nan'):.2f} s)  after indexing {b['ms']:7.1f} ms "
                  f"(context {b['context_files']})  ratio {rows[-1]['ratio']:.2f}", flush=True)
        summary = {
            "repo": str(repo) if args.repo else f"built from installed sources ({args.files} files)",
            "indexed_files": rows[0]["at_start"]["indexed_files"] if rows else None,
            "median_at_start_ms": statistics.median(r["at_start"]["ms"] for r in rows),
            "median_after_index_ms": statistics.median(r["after_index"]["ms"] for r in rows),
            "median_ratio": statistics.median(r["ratio"] for r in rows),
            "median_index_seconds": statistics.median(r["at_start"]["index_seconds"] or 0 for r in rows),
            "context_at_start": sum(bool(r["at_start"]["context_files"]) for r in rows),
            "context_after_index": sum(bool(r["after_index"]["context_files"]) for r in rows),
            "runs": rows,
        }
    print("\n| figure | value |\n|---|---|")
    for k in ("indexed_files", "median_index_seconds", "median_at_start_ms", "median_after_index_ms",
              "median_ratio", "context_at_start", "context_after_index"):
        print(f"| {k} | {summary[k]} |")
    out = json.dumps(summary, indent=1)
    print(out)
    if args.json:
        args.json.write_text(out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
