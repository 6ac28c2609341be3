"""Keystroke latency while the editor's fine-tuning runs, against the same session when idle.

One ``sc2lsp serve`` (sc2-tiny) driven over stdio like an editor (``sc2lsp.lsp.rawclient``) on a
workspace holding a copy of an installed package. The session script types a few lines into a file
one character at a time, asking for an inline completion after every keystroke, and measures each
request's round trip. It runs idle, then while ``sc2lsp.tune`` (the server's command: ``sc2lsp tune``
as a child process at nice 10) is in its training stage, interleaved with the same session while
the tune child is paused (SIGSTOP), then idle again. The figure is the ratio of the keystroke
latency (all keystrokes: p50, mean; those the model answered: p50) during training to the paused
sessions' (same script, same server, interleaved in time, so the load of other work cancels out).

    .venv/bin/python bench/tune_latency.py [--repo PKG] [--json bench/results/tune_latency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

from sc2lsp.lsp.rawclient import StdioClient  # noqa: E402

SCRIPT = [
    "    def area(self) -> float:\n",
    "        return (self.right - self.left)\n",
]
HEAD = "class Box:\n    left: float\n    right: float\n    top: float\n    bottom: float\n\n"


def session(client: StdioClient, uri: str, version: list[int]) -> list[tuple[float, str]]:
    """Type SCRIPT into a fresh copy of the file, one character per keystroke; (ms, source) per inline
    request (source: ``model`` when the model ran for it, ``typed_along`` when it was answered from
    the shown suggestion, ...; read from ``sc2lsp/status`` after the request, outside the timing)."""
    version[0] += 1
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version[0]},
                                             "contentChanges": [{"text": HEAD}]})  # the whole document back
    out = []
    line = HEAD.count("\n")
    for piece in SCRIPT:
        col = 0
        for ch in piece:
            version[0] += 1
            client.change(uri, version[0], ch, (line, col), (line, col))
            if ch == "\n":
                line, col = line + 1, 0
            else:
                col += 1
            t0 = time.perf_counter()
            client.inline(uri, line, col, timeout=300)
            ms = (time.perf_counter() - t0) * 1000
            out.append((ms, str(client.status().get("last", {}).get("source"))))
    return out


def _tune_child(server_pid: int) -> int:
    """The pid of the server's `python -m finetune tune` child."""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == server_pid and b"finetune" in cmd and b"tune" in cmd:
            return int(p.name)
    raise SystemExit("the server's tune child process was not found")


def summary(runs: list[tuple[float, str]]) -> dict:
    xs = sorted(ms for ms, _ in runs)
    model = sorted(ms for ms, src in runs if src == "model")
    return {"keystrokes": len(xs), "p50_ms": round(statistics.median(xs), 1),
            "p95_ms": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 1), "mean_ms": round(statistics.fmean(xs), 1),
            "model_keystrokes": len(model), "model_p50_ms": round(statistics.median(model), 1) if model else None,
            "model_mean_ms": round(statistics.fmean(model), 1) if model else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default="cattrs", help="an installed package copied as the workspace (default cattrs)")
    ap.add_argument("--model", default="sc2-tiny")
    ap.add_argument("--repeat", type=int, default=3, help="sessions per phase (default 3)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    import importlib

    pkg = Path(importlib.import_module(args.repo).__file__).parent
    tmp = Path(tempfile.mkdtemp(prefix="sc2lsp-bench-tune-"))
    ws = tmp / args.repo
    shutil.copytree(pkg, ws, ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp / "config"), "XDG_CACHE_HOME": str(tmp / "cache"),
           "XDG_DATA_HOME": str(tmp / "data"), "SC2LSP_STATS_FILE": str(tmp / "stats.jsonl")}
    client = StdioClient([sys.executable, "-m", "sc2lsp.cli", "serve"], env=env)
    try:
        client.request("initialize", {  # an editor that shows work-done progress (as VS Code and Neovim do)
            "processId": os.getpid(), "rootUri": ws.as_uri(), "workspaceFolders": [{"uri": ws.as_uri(), "name": ws.name}],
            "capabilities": {"textDocument": {"inlineCompletion": {}, "completion": {}},
                             "window": {"workDoneProgress": True}, "workspace": {"workspaceFolders": True}},
            "initializationOptions": {"model": args.model, "threads": 1, "warmUp": False, "maxPromptMs": 600_000,
                                      "maxPredictMs": 600_000}})
        client.notify("initialized", {})
        assert client.wait_ready(300)["state"] == "ready"
        doc = ws / "bench_box.py"
        uri = doc.as_uri()
        client.open(uri, HEAD)
        version = [1]
        session(client, uri, version)  # warm-up: caches and the index as in the measured runs
        idle1 = [ms for _ in range(args.repeat) for ms in session(client, uri, version)]
        tune_id = client.send_request("workspace/executeCommand", {"command": "sc2lsp.tune", "arguments": [
            str(ws), {"train": ["max_steps=100000", "max_minutes=30", "save_every=1000", "eval_every=100000"],
                      "prepare": ["seq_len=256", "epochs=1"], "name": "bench"}]})
        t0 = time.time()
        while not any("train: step" in (p.get("value", {}).get("message") or "")
                      for p in client.messages("$/progress")):
            if time.time() - t0 > 900:
                raise SystemExit("the tune run never reached its training stage")
            time.sleep(0.5)
        # interleaved: the tune child paused (SIGSTOP: idle) and running, so the machine's drift cancels
        child = _tune_child(client.proc.pid)
        during, paused = [], []
        for _ in range(args.repeat):
            during += session(client, uri, version)
            os.kill(child, signal.SIGSTOP)
            try:
                paused += session(client, uri, version)
            finally:
                os.kill(child, signal.SIGCONT)
        steps = [p["value"]["message"] for p in client.messages("$/progress")
                 if "train: step" in (p.get("value", {}).get("message") or "")]
        client.request("workspace/executeCommand", {"command": "sc2lsp.tuneCancel", "arguments": []})
        try:
            client.response(tune_id, 120)
        except TimeoutError:
            pass
        idle2 = [ms for _ in range(args.repeat) for ms in session(client, uri, version)]
    finally:
        client.close()
        shutil.rmtree(tmp, ignore_errors=True)
    idle = summary(paused)
    res = {"load": os.getloadavg(), "model": args.model, "repo": args.repo, "idle_before": summary(idle1),
           "during_training": summary(during), "training_paused": idle, "idle_after": summary(idle2), "idle": idle,
           "training_progress_seen": steps[-1] if steps else None, "repeat": args.repeat,
           "ratio_p50": round(summary(during)["p50_ms"] / idle["p50_ms"], 3),
           "ratio_mean": round(summary(during)["mean_ms"] / idle["mean_ms"], 3),
           "ratio_model_p50": round(summary(during)["model_p50_ms"] / idle["model_p50_ms"], 3)
           if idle["model_p50_ms"] and summary(during)["model_p50_ms"] else None}
    print(f"{'run':18} {'keys':>5} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'model keys':>10} {'model p50':>10}")
    for k in ("idle_before", "during_training", "training_paused", "idle_after"):
        r = res[k]
        print(f"{k:18} {r['keystrokes']:>5} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['mean_ms']:>8} "
              f"{r['model_keystrokes']:>10} {r['model_p50_ms']!s:>10}")
    print(f"during training / training paused (interleaved): p50 x{res['ratio_p50']}, mean x{res['ratio_mean']}, "
          f"model-answered keystrokes p50 x{res['ratio_model_p50']} "
          f"(load {', '.join(f'{x:.1f}' for x in res['load'])}; {res['training_progress_seen']})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
