"""A team on one inference server vs everyone on their own: N editors typing at once.

For N = 1, 2, 4, 8 simulated editors, each a real ``sc2lsp serve`` driven over stdio (as in
bench/latency.py) typing the scripted session of bench/latency.py in its own copy of the files,
all starting together (closed loop: each keystroke waits for its suggestion, then ``--think-ms``):

* ``llama-server``: one shared ``llama-server -np N`` (N slots, prompt cache), every editor with
  ``endpoint`` + ``api = "llama-server"`` (its own slot);
* ``llama-cpp-python``: one shared ``python -m llama_cpp.server`` (one model, requests in turn),
  every editor with ``api = "openai"``;
* ``local``: N ``sc2lsp serve`` each with the model in process (today's default).

Reported per configuration and N: keystroke latency p50/p95 (the editor's inline request round
trip), throughput (keystrokes answered per second, all editors), model calls, and the total RSS of
every process involved (editors + shared server). Every figure comes from the same run, so the
machine's load affects all configurations alike; say the load (``uptime``) with the numbers.

    .venv/bin/python bench/team.py [--n 1 2 4 8] [--keys 20] [--model sc2-tiny] [--json out.json]

llama-server is built once by bench/build_llama_server.sh (skipped with a note when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

from bench import llama_server_ref  # noqa: E402
from bench.latency import FILE_A, FILE_B, Editor, pct, session  # noqa: E402
from sc2lsp.backends.llama_cpp import auto_threads  # noqa: E402
from sc2lsp.lsp.rawclient import StdioClient  # noqa: E402
from sc2lsp.models.registry import resolve  # noqa: E402

CONFIGS = ("llama-server", "llama-cpp-python", "local")
ALIAS = "sc2-tiny"  #: the name the shared servers serve the model under (a models.toml name)


class PacedEditor(Editor):
    """An editor that pauses ``think_s`` before each request (a typist, not a flood)."""

    think_s: float = 0.0

    def ask(self, d, offset, kind):
        time.sleep(self.think_s)
        return super().ask(d, offset, kind)


def workspace(base: Path, i: int) -> tuple[Path, Path, Path]:
    """Editor ``i``'s own copies of the session's two files (a renamed class: different prompts)."""
    root = base / f"editor{i}"
    root.mkdir(parents=True, exist_ok=True)
    a, b = root / FILE_A.name, root / FILE_B.name
    a.write_text(FILE_A.read_text().replace("Point", f"Point{i}"))
    shutil.copy(FILE_B, b)
    return root, a, b


def start_shared(kind: str, model: Path, n: int, threads: int, n_ctx: int, log: Path):
    if kind == "llama-server":
        return llama_server_ref.LlamaServer(model, threads=threads, n_ctx=n_ctx, slots=n, log=log, alias=ALIAS).start()
    port = llama_server_ref.free_port()
    cmd = llama_server_ref.llama_cpp_python_server(
        "--model", str(model), "--host", "127.0.0.1", "--port", str(port), "--model_alias", ALIAS,
        "--n_threads", str(threads), "--n_ctx", str(n_ctx), "--flash_attn", str(llama_server_ref.flash_attn_for(model)).lower())
    srv = llama_server_ref.LlamaServer.__new__(llama_server_ref.LlamaServer)
    srv.url, srv.port, srv.cmd, srv.log = f"http://127.0.0.1:{port}", port, cmd, log
    srv.proc = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    import urllib.request

    for _ in range(600):
        try:
            urllib.request.urlopen(srv.url + "/v1/models", timeout=2).close()
            return srv
        except OSError:
            time.sleep(0.2)
    srv.stop()
    raise SystemExit("llama_cpp.server did not start")


def editor_options(kind: str, model: Path, threads: int, max_tokens: int, url: str | None) -> dict:
    opts = {"model": str(model), "threads": threads, "maxTokens": max_tokens, "warmUp": False,
            "tokenHealing": False, "maxPromptMs": 600_000, "maxPredictMs": 600_000}
    if kind != "local":  # served as "sc2-tiny"; its local GGUF counts the tokens
        opts.update(endpoint=url, api="llama-server" if kind == "llama-server" else "openai", model=ALIAS)
    return opts


def run_one(kind: str, n: int, model: Path, args, base: Path) -> dict:
    threads = args.threads or auto_threads(model)
    shared = None
    if kind != "local":
        shared = start_shared(kind, model, n, threads, args.n_ctx, base / f"{kind}-{n}.log")
    editors: list[tuple[StdioClient, PacedEditor, Path, Path]] = []
    try:
        for i in range(n):
            root, a, b = workspace(base / f"{kind}-{n}", i)
            c = StdioClient([sys.executable, "-m", "sc2lsp.cli", "serve"], cwd=ROOT)
            c.initialize(root, editor_options(kind, model, threads, args.max_tokens, shared.url if shared else None))
            editors.append((c, PacedEditor(c), a, b))
        for c, *_ in editors:
            st = c.wait_ready(timeout=600)
            if st["state"] != "ready":
                raise SystemExit(f"{kind}: editor not ready: {st['error']}")
        start = threading.Barrier(n)
        ends: list[float] = []

        def type_session(ed: PacedEditor, a: Path, b: Path) -> None:
            ed.think_s = args.think_ms / 1000
            da, db = ed.open(a), ed.open(b)
            start.wait()
            session(ed, da, db, args.keys)
            ends.append(time.perf_counter())

        workers = [threading.Thread(target=type_session, args=(ed, a, b)) for _, ed, a, b in editors]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = max(ends) - t0
        rss = sum(llama_server_ref.rss_bytes(c.proc.pid) for c, *_ in editors)
        shared_rss = shared.rss if shared else 0
        ms = [e["ms"] for _, ed, *_ in editors for e in ed.log]
        calls = sum(c.status()["totals"]["model_requests"] for c, *_ in editors)
        empty = sum(1 for _, ed, *_ in editors for e in ed.log if e["last"].get("stop_reason") in ("no_model",))
    finally:
        for c, *_ in editors:
            c.close()
        if shared is not None:
            shared.stop()
    return {"config": kind, "n": n, "keystrokes": len(ms), "p50_ms": round(pct(ms, 0.5), 1),
            "p95_ms": round(pct(ms, 0.95), 1), "keystrokes_per_s": round(len(ms) / wall, 2),
            "wall_s": round(wall, 1), "model_calls": calls, "no_model": empty,
            "rss_mb": round((rss + shared_rss) / 2**20, 1), "shared_server_rss_mb": round(shared_rss / 2**20, 1)}


def table(rows: list[dict]) -> str:
    head = ("config", "N", "keys", "p50 ms", "p95 ms", "keys/s", "model calls", "RSS MB (shared)")
    lines = [head] + [(r["config"], r["n"], r["keystrokes"], r["p50_ms"], r["p95_ms"], r["keystrokes_per_s"],
                       r["model_calls"], f"{r['rss_mb']:.0f} ({r['shared_server_rss_mb']:.0f})") for r in rows]
    widths = [max(len(str(x[i])) for x in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--config", choices=CONFIGS, action="append", help="default: all three")
    ap.add_argument("--model", default="sc2-tiny")
    ap.add_argument("--keys", type=int, default=20, help="keystrokes per editor")
    ap.add_argument("--think-ms", type=float, default=100.0, help="pause before each keystroke's request")
    ap.add_argument("--threads", type=int, default=0, help="per model instance (0: as sc2lsp chooses)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--n-ctx", type=int, default=2048, help="context per editor (llama-server: per slot)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    model = resolve(args.model)
    configs = args.config or list(CONFIGS)
    if "llama-server" in configs and not llama_server_ref.available():
        print(f"note: skipping llama-server: {llama_server_ref.BUILD_HINT}", file=sys.stderr)
        configs.remove("llama-server")
    rows = []
    with tempfile.TemporaryDirectory(prefix="sc2lsp-team-") as tmp:
        for n in args.n:
            for kind in configs:
                rows.append(run_one(kind, n, model, args, Path(tmp)))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(table(rows))
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores: {os.cpu_count()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "model": args.model, "keys": args.keys,
                                         "think_ms": args.think_ms, "loadavg": load}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
