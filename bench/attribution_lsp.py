"""Attribution through the language server: what ``sc2lsp/attribution`` costs over stdio.

Indexes a corpus (default: the Python standard library this venv runs on), starts ``sc2lsp
serve`` on the embedded model with ``attributionIndex`` set, and times, for 1 kB suggestions
copied from random indexed files (re-indented, so the normalisation is exercised):

* ``sc2lsp/attribution {"text"}`` round trips, against two **references** measured in the same
  run: ``AttributionIndex.check`` of the same texts in this process, and a no-op request
  (``textDocument/documentHighlight``, answered with nothing) sent just before each one: the
  stdio/JSON-RPC round trip itself;
* the accept flow: ``workspace/executeCommand sc2lsp.suggestionAccepted`` + ``sc2lsp/attribution``
  with no params;
* one 1,000,000-character text (the size limit): the bounded worst case.

    .venv/bin/python bench/attribution_lsp.py [--corpus DIR ...] [--n 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import sysconfig
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODEL = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p95_ms": pct(ms, 0.95), "max_ms": max(ms)}


def snippets(corpus: list[str], n: int, seed: int) -> list[str]:
    """``n`` 1 kB pieces of random corpus files (starting at a line), re-indented by two spaces."""
    from sc2lsp.workspace.scan import is_source_path, scan

    files = [(root, e) for root in corpus for e in scan(Path(root)) if e.reason is None and is_source_path(e.path)
             and e.text and len(e.text) > 2000]
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        _, e = rng.choice(files)
        start = e.text.rfind("\n", 0, rng.randrange(0, len(e.text) - 1100)) + 1
        out.append(textwrap.indent(e.text[start:start + 1000], "  "))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", action="append", help="corpus directory (default: the standard library)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()

    from sc2lsp.attribution.build import build_index
    from sc2lsp.attribution.query import MAX_QUERY_CHARS, AttributionIndex
    from sc2lsp.lsp.rawclient import StdioClient

    corpus = args.corpus or [sysconfig.get_paths()["stdlib"]]
    tmp = tempfile.TemporaryDirectory(prefix="sc2lsp-attr-lsp-")
    index_dir = Path(tmp.name) / "index"
    t0 = time.perf_counter()
    stats = build_index(corpus, index_dir)
    build_s = time.perf_counter() - t0
    texts = snippets(corpus, args.n, args.seed)

    index = AttributionIndex.open(index_dir)
    ref_ms, ref_found = [], 0
    for t in texts:
        t1 = time.perf_counter()
        spans = index.check(t)
        ref_ms.append(1000 * (time.perf_counter() - t1))
        ref_found += bool(spans)

    ws = Path(tmp.name) / "ws"
    ws.mkdir()
    c = StdioClient([sys.executable, "-m", "sc2lsp.cli", "serve"], cwd=ws)
    c.initialize(ws, {"model": str(MODEL), "threads": 1, "warmUp": False, "repoContext": False,
                      "attributionIndex": [str(index_dir)]})
    assert c.wait_ready()["state"] == "ready"
    c.request("sc2lsp/attribution", {"text": texts[0]})  # opens the index (not timed)
    lsp_ms, noop_ms, lsp_found = [], [], 0
    noop = {"textDocument": {"uri": (ws / "none.py").as_uri()}, "position": {"line": 0, "character": 0}}
    for t in texts:
        t1 = time.perf_counter()
        c.request("textDocument/documentHighlight", noop)
        noop_ms.append(1000 * (time.perf_counter() - t1))
        t1 = time.perf_counter()
        res = c.request("sc2lsp/attribution", {"text": t}, timeout=120)
        lsp_ms.append(1000 * (time.perf_counter() - t1))
        lsp_found += bool(res["spans"])
    uri = (ws / "a.py").as_uri()
    acc_ms = []
    for t in texts[: max(1, args.n // 4)]:
        rng = {"start": {"line": 0, "character": 0}, "end": {"line": t.count("\n"), "character": 0}}
        t1 = time.perf_counter()
        c.request("workspace/executeCommand", {"command": "sc2lsp.suggestionAccepted", "arguments": [uri, rng, t]})
        c.request("sc2lsp/attribution", {}, timeout=120)
        acc_ms.append(1000 * (time.perf_counter() - t1))
    big = ("\n".join(texts) * (MAX_QUERY_CHARS // max(1, len("\n".join(texts))) + 1))[:MAX_QUERY_CHARS]
    t1 = time.perf_counter()
    res = c.request("sc2lsp/attribution", {"text": big}, timeout=600)
    big_ms = 1000 * (time.perf_counter() - t1)
    t1 = time.perf_counter()
    big_ref = index.check(big)
    big_ref_ms = 1000 * (time.perf_counter() - t1)
    assert c.close() == 0

    result = {
        "corpus": corpus, "documents": stats.documents, "corpus_mb": stats.raw_bytes / 1e6, "build_s": build_s,
        "index_mb": stats.index_bytes / 1e6,
        "lsp": summary(lsp_ms), "reference_in_process": summary(ref_ms), "reference_noop_request": summary(noop_ms),
        "lsp_p50_vs_reference": statistics.median(lsp_ms) / statistics.median(ref_ms),
        "lsp_p50_vs_noop": statistics.median(lsp_ms) / statistics.median(noop_ms),
        "found_lsp": lsp_found, "found_reference": ref_found, "queries": len(texts),
        "accept_then_check": summary(acc_ms),
        "one_mb_lsp_ms": big_ms, "one_mb_reference_ms": big_ref_ms, "one_mb_spans": len(res["spans"]),
        "one_mb_reference_spans": len(big_ref),
    }
    rows = [
        ("corpus", f"{result['corpus_mb']:.0f} MB, {stats.documents} files", f"index {result['index_mb']:.1f} MB, built in {build_s:.0f} s"),
        ("in-process check (reference)", f"p50 {result['reference_in_process']['p50_ms']:.2f} ms, p95 {result['reference_in_process']['p95_ms']:.2f} ms",
         f"{ref_found}/{len(texts)} with a span"),
        ("no-op request (reference)", f"p50 {result['reference_noop_request']['p50_ms']:.2f} ms, p95 {result['reference_noop_request']['p95_ms']:.2f} ms",
         "textDocument/documentHighlight, same server"),
        ("sc2lsp/attribution {text}", f"p50 {result['lsp']['p50_ms']:.2f} ms, p95 {result['lsp']['p95_ms']:.2f} ms",
         f"{lsp_found}/{len(texts)} with a span; p50 {result['lsp_p50_vs_reference']:.1f}x in-process, "
         f"{result['lsp_p50_vs_noop']:.1f}x a no-op request"),
        ("accept + check last", f"p50 {result['accept_then_check']['p50_ms']:.2f} ms, p95 {result['accept_then_check']['p95_ms']:.2f} ms", "two requests"),
        ("1 M characters", f"{big_ms:.0f} ms over LSP", f"{big_ms / big_ref_ms:.2f}x in-process ({big_ref_ms:.0f} ms); {len(res['spans'])} spans"),
    ]
    w = max(len(r[0]) for r in rows)
    for a, b, cc in rows:
        print(f"{a:<{w}}  {b:<40}  {cc}")
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
