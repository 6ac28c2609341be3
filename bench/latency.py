"""Completion latency of ``sc2lsp serve`` against raw llama.cpp, as a table and as JSON.

For each model, the server runs as a subprocess driven over stdio like an editor
(``sc2lsp.lsp.rawclient``), and the reference is llama.cpp called directly in this process
(``LlamaCppBackend``: same GGUF, same threads). Figures, each a ratio against a reference
measured in the same run (issue 3, item 7):

a. cold request: client round-trip latency / raw llama.cpp time for the same prompt and the
   same number of output tokens (target <= 1.05);
b. keystrokes that diverge from the suggestion: prompt tokens evaluated per keystroke
   (target <= 3) and latency / pure decode time of the returned tokens (target <= 1.05);
c. keystrokes that follow the suggestion: p50 latency (target <= 20 ms, no model call);
d. a scripted 50-keystroke session (typing along, diverging, deleting, another function,
   another file and back): the server's model-busy time / that of a naive client sending
   every keystroke's full PSM prompt to llama.cpp with prefix caching, as llama-server's
   /infill does by default (target <= 0.5); and, when llama-server is built
   (bench/build_llama_server.sh), the same keystrokes sent to llama-server's own /infill with
   cache_prompt, in its default order and with --spm-infill: (d) is then also reported as
   sc2lsp's model time / llama-server's best configuration (its own timings; target <= 0.5);
e. p50/p95 latency per kind of keystroke;
f. server RSS - model file size (target <= +300 MB).

    .venv/bin/python bench/latency.py [--model sc2-tiny] [--with-3b] [--json out.json]

``--with-3b`` adds the random-weight StarCoder2-3B-shaped Q4_K_M GGUF that
``bench/convert_rss.py`` builds and caches (built here if missing: ~20 GB disk, tens of minutes).
A 3B model on a shared 2-core machine evaluates ~10-20 prompt tokens/s, so its run is sized
down and says so in the table: a shorter session (``--keys-3b``), a smaller prompt budget for
both the server and the naive client (``--context-budget-3b``), fewer generated tokens
(``--max-tokens-3b``), one thread by default (``--threads-3b``).

``--token-healing off`` runs the server without token healing (for before/after figures).
``--no-llama-server`` skips the llama-server reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # before bench/ itself: bench/finetune.py would shadow the package
    sys.path.insert(0, str(ROOT))

from bench import llama_server_ref  # noqa: E402
from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings, auto_threads  # noqa: E402
from sc2lsp.core.budget import approx_tokens, plan_budget  # noqa: E402
from sc2lsp.core.prompt import FimMode, infill_prompt  # noqa: E402
from sc2lsp.core.tokens import FIM_MIDDLE, STOP_TOKENS  # noqa: E402
from sc2lsp.lsp.rawclient import StdioClient  # noqa: E402
from sc2lsp.models.registry import resolve  # noqa: E402

FILE_A = ROOT / "examples" / "demo" / "geometry.py"
FILE_B = ROOT / "sc2lsp" / "core" / "budget.py"


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


@dataclass
class Doc:
    uri: str
    text: str
    version: int = 1

    def pos(self, offset: int) -> tuple[int, int]:
        before = self.text[:offset]
        return before.count("\n"), len(before) - (before.rfind("\n") + 1)  # ASCII files


@dataclass
class Editor:
    """Keeps the documents as the server should see them and times each request."""

    c: StdioClient
    docs: dict[str, Doc] = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)

    def open(self, path: Path) -> Doc:
        d = Doc(path.resolve().as_uri(), path.read_text())
        self.c.open(d.uri, d.text)
        self.docs[d.uri] = d
        return d

    def insert(self, d: Doc, offset: int, s: str) -> int:
        d.version += 1
        self.c.change(d.uri, d.version, s, d.pos(offset))
        d.text = d.text[:offset] + s + d.text[offset:]
        return offset + len(s)

    def delete(self, d: Doc, offset: int) -> int:
        d.version += 1
        self.c.change(d.uri, d.version, "", d.pos(offset - 1), d.pos(offset))
        d.text = d.text[: offset - 1] + d.text[offset:]
        return offset - 1

    def ask(self, d: Doc, offset: int, kind: str) -> str:
        line, col = d.pos(offset)
        t0 = time.perf_counter()
        items = self.c.inline(d.uri, line, col, timeout=1800)
        ms = (time.perf_counter() - t0) * 1000
        st = self.c.status(None)
        self.log.append({"kind": kind, "ms": ms, "last": st.get("last", {}), "text": d.text, "offset": offset,
                         "path": Path(d.uri).name})
        return items[0]["insertText"] if items else ""


@dataclass
class Sizing:
    """How big one model's run is (the 3B gets a smaller one)."""

    keys: int
    threads: int
    max_tokens: int
    context_budget: int
    token_healing: bool
    cold_spots: int = 3
    llama_server: bool = True  #: also replay the session on llama-server's /infill (if built)


def server_options(model: str, cfg: Sizing) -> dict:
    return {"model": model, "threads": cfg.threads, "maxTokens": cfg.max_tokens, "warmUp": True,
            "contextBudget": cfg.context_budget, "tokenHealing": cfg.token_healing,
            "maxPromptMs": 3_600_000, "maxPredictMs": 3_600_000,
            "stateDiskMb": 0}  # cold means cold: no KV state from an earlier run on disk


def heal_bytes(prompt: str) -> int:
    """The bytes of an SPM prompt's prefix (after ``<fim_middle>`` and the path line)."""
    tail = prompt.rsplit(FIM_MIDDLE, 1)[-1]
    return len(tail.split("\n", 1)[-1].encode("utf-8"))


def raw_time(backend: LlamaCppBackend, prompt: str, max_tokens: int, cold: bool, heal: bool = False) -> tuple[float, object]:
    if cold:
        backend.llm.n_tokens = 0
    t0 = time.perf_counter()
    g = backend.generate(prompt, max_tokens=max_tokens, stop=STOP_TOKENS, heal_bytes=heal_bytes(prompt) if heal else 0)
    return (time.perf_counter() - t0) * 1000, g


def bench_model(model: str, cfg: Sizing) -> dict:
    path = resolve(model)
    out: dict = {"model": model, "path": str(path), "file_bytes": path.stat().st_size, "sizing": vars(cfg)}
    t_start = time.perf_counter()
    c = StdioClient([sys.executable, "-m", "sc2lsp.cli", "serve"], cwd=ROOT)
    try:
        c.initialize(ROOT, server_options(str(path), cfg))
        st = c.wait_ready(timeout=1800)
        if st["state"] != "ready":
            raise SystemExit(f"{model}: {st['error']}")
        ed = Editor(c)
        a = ed.open(FILE_A)
        b = ed.open(FILE_B)
        c.request("sc2lsp/status", {})
        raw = LlamaCppBackend(path, LlamaSettings(n_threads=cfg.threads, state_cache_mb=0, n_ctx=st["n_ctx"],
                                                  repack=st["settings"]["repack_weights"]))

        # (a) cold requests at places the server has not seen, against raw llama.cpp
        spots = [(a, a.text.index("        return ") + 15), (b, b.text.index("    p_max = ") + 4),
                 (b, b.text.index("    return BudgetPlan(") + 4)][: cfg.cold_spots]
        lat, ref, decode, ptoks, stages = [], [], [], [], []
        for d, off in spots:
            # the user opened the files a moment ago: their didOpen warm-ups and the workspace
            # index are done (what a cold prompt costs, not what concurrent start-up work costs)
            end = time.monotonic() + 600
            while not c.status()["worker"]["idle"] and time.monotonic() < end:
                time.sleep(0.05)
            ed.ask(d, off, "cold")
            last = ed.log[-1]["last"]
            ptoks.append(last.get("prompt_tokens"))
            prompt = c.request("sc2lsp/status", {"prompt": True})["last_prompt"]
            # the same work: same prompt, same token healing, same number of generated tokens
            ms, g = raw_time(raw, prompt, max(1, last["generated_tokens"]), cold=True, heal=bool(last.get("healed_tokens")))
            lat.append(ed.log[-1]["ms"])
            ref.append(ms)
            stages.append({"client_ms": round(ed.log[-1]["ms"], 1),
                           **{k: last.get(k) for k in ("queue_ms", "context_ms", "prompt_ms", "generate_ms",
                                                        "postprocess_ms", "total_ms")},
                           "raw_prompt_ms": round(g.timings.prompt_ms, 1), "raw_generate_ms": round(g.timings.generate_ms, 1),
                           "raw_other_ms": round(ms - g.timings.prompt_ms - g.timings.generate_ms, 1)})
            if g.timings.generated_tokens:
                decode.append(g.timings.generate_ms / g.timings.generated_tokens)
        ms_per_token = statistics.median(decode) if decode else float("nan")
        out["a_cold"] = {"latency_ms": [round(x, 1) for x in lat], "raw_ms": [round(x, 1) for x in ref],
                         "ratio": round(sum(lat) / sum(ref), 3), "decode_ms_per_token": round(ms_per_token, 2),
                         "prompt_tokens": ptoks, "stages": stages}

        # (b) diverging and (c) following keystrokes, then (d) the scripted session
        before = c.status()
        busy0 = before["worker"]["busy_ms"]
        ed.log.clear()
        session(ed, a, b, cfg.keys)
        after = c.status()
        server_busy = after["worker"]["busy_ms"] - busy0
        div = [e for e in ed.log if e["kind"] == "diverge" and e["last"].get("source") == "model"]
        evals = [e["last"]["prompt_tokens_evaluated"] for e in div]
        ratios = [e["ms"] / max(1e-6, e["last"]["generated_tokens"] * ms_per_token) for e in div if e["last"]["generated_tokens"]]
        out["b_diverge"] = {"keystrokes": len(div), "prompt_tokens_evaluated_max": max(evals, default=None),
                            "prompt_tokens_evaluated_p50": pct(evals, 0.5),
                            "prompt_tokens_evaluated": evals,
                            "healed_tokens": [e["last"].get("healed_tokens", 0) for e in div],
                            "latency_over_decode_p50": round(pct(ratios, 0.5), 3)}
        fol = [e["ms"] for e in ed.log if e["kind"] == "follow"]
        fol_sources = {e["last"].get("source") for e in ed.log if e["kind"] == "follow"}
        out["c_follow"] = {"keystrokes": len(fol), "p50_ms": round(pct(fol, 0.5), 2), "sources": sorted(fol_sources)}

        naive_ms = naive_session_ms(raw, ed.log, cfg, st["n_ctx"])
        out["d_session"] = {"keystrokes": len(ed.log), "server_model_ms": round(server_busy, 1),
                            "naive_model_ms": round(naive_ms, 1), "ratio": round(server_busy / naive_ms, 3),
                            "server_model_calls": after["totals"]["model_requests"] - before["totals"]["model_requests"],
                            "typed_along": after["totals"]["typed_along"] - before["totals"]["typed_along"]}
        if cfg.llama_server and llama_server_ref.available():
            out["d_session"].update(versus_llama_server(path, ed.log, cfg, st["n_ctx"], server_busy))
        ctx_ms = [e["last"]["context_ms"] for e in ed.log if "context_ms" in e["last"]]
        out["d_session"]["context_ms_p50"] = round(pct(ctx_ms, 0.5), 2) if ctx_ms else None
        kinds = sorted({e["kind"] for e in ed.log})
        out["e_per_kind"] = {k: {"n": len(v), "p50_ms": round(pct(v, 0.5), 2), "p95_ms": round(pct(v, 0.95), 2)}
                             for k in kinds for v in [[e["ms"] for e in ed.log if e["kind"] == k]]}
        rss = _rss(c.proc.pid)
        out["f_memory"] = {"server_rss_bytes": rss, "model_file_bytes": out["file_bytes"],
                           "rss_over_file_mb": round((rss - out["file_bytes"]) / 2**20, 1)}
        out["repack_weights"] = st["settings"]["repack_weights"]
    finally:
        c.close()
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    return out


def versus_llama_server(path: Path, log: list[dict], cfg: Sizing, n_ctx: int, server_busy: float) -> dict:
    """The session on llama-server's /infill (default order and --spm-infill) and (d) against the best."""
    ref = llama_server_ref.llama_server_reference(path, log, threads=cfg.threads or auto_threads(path), n_ctx=n_ctx,
                                                  budget=cfg.context_budget, n_predict=cfg.max_tokens)
    best = ref[ref["best"]]["model_ms"]
    return {"llama_server": ref, "ratio_vs_llama_server": round(server_busy / best, 3) if best else None}


def naive_session_ms(raw: LlamaCppBackend, log: list[dict], cfg: Sizing, n_ctx: int) -> float:
    """The naive client: every keystroke's full PSM prompt, llama.cpp with prefix caching."""
    naive_ms = 0.0
    raw.llm.n_tokens = 0
    for e in log:
        text, off = e["text"], e["offset"]
        prefix, suffix = text[:off], text[off:]
        total = max(64, min(cfg.context_budget, n_ctx - cfg.max_tokens - 48))
        p, s = plan_budget(prefix, suffix, total, approx_tokens).cut(prefix, suffix)
        prompt = infill_prompt(p, s, path=e["path"], mode=FimMode.PSM)
        ms, _ = raw_time(raw, prompt, cfg.max_tokens, cold=False)
        naive_ms += ms
    return naive_ms


def session(ed: Editor, a: Doc, b: Doc, keys: int) -> None:
    """The scripted editing session: each keystroke is followed by an inline completion request."""
    n = 0

    def budget() -> bool:
        return n < keys

    def type_along(d: Doc, off: int, suggestion: str, k: int) -> int:
        nonlocal n
        # never the whole suggestion: typing its last character asks the model for the next one
        for ch in suggestion.split("\n", 1)[0][: min(k, len(suggestion) - 1)]:
            if not budget():
                break
            off = ed.insert(d, off, ch)
            n += 1
            suggestion = ed.ask(d, off, "follow") or suggestion
        return off

    def type_text(d: Doc, off: int, s: str, kind: str = "diverge") -> tuple[int, str]:
        nonlocal n
        sug = ""
        for ch in s:
            if not budget():
                break
            off = ed.insert(d, off, ch)
            n += 1
            sug = ed.ask(d, off, kind)
        return off, sug

    def backspace(d: Doc, off: int, k: int) -> tuple[int, str]:
        nonlocal n
        sug = ""
        for _ in range(k):
            if not budget():
                break
            off = ed.delete(d, off)
            n += 1
            sug = ed.ask(d, off, "delete")
        return off, sug

    # function 1 of file A: request, type along, diverge, delete
    off = a.text.index("        return ") + 15
    sug = ed.ask(a, off, "first")
    off = type_along(a, off, sug, 5)
    off, sug = type_text(a, off, " + 0  # z")
    off, sug = backspace(a, off, 4)
    off = type_along(a, off, sug, 3)
    # another function in the same file
    off2 = a.text.index("    n = len(points)\n") + len("    n = len(points)\n")
    off2, sug = type_text(a, off2, "    if n == 0:", "move")
    off2 = type_along(a, off2, sug, 4)
    # another file, then back to the first place
    off3 = b.text.index("    s_end, s_tokens = ")
    off3, sug = type_text(b, off3, "    # x", "switch")
    off3 = type_along(b, off3, sug, 4)
    off, sug = type_text(a, off, " ", "switch")
    off, sug = type_text(a, off, "+ 1 * y", "diverge")
    off = type_along(a, off, sug, 5)
    while budget():  # pad to the keystroke count with plain typing in file B
        off3, sug = type_text(b, off3, "z", "diverge")


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def table(results: list[dict]) -> str:
    rows = [("figure", "target", *[r["model"] for r in results])]

    def add(name, target, f):
        rows.append((name, target, *[f(r) for r in results]))

    add("a. cold request / raw llama.cpp", "<= 1.05", lambda r: f"{r['a_cold']['ratio']:.3f}")
    add("   cold latency ms (server | raw)", "", lambda r: f"{statistics.median(r['a_cold']['latency_ms']):.0f} | {statistics.median(r['a_cold']['raw_ms']):.0f}")
    def stages(r):
        st = r["a_cold"].get("stages") or []
        if not st:
            return "-"
        tot = {k: sum((x.get(k) or 0) for x in st) for k in ("client_ms", "queue_ms", "prompt_ms", "generate_ms", "postprocess_ms", "total_ms", "raw_prompt_ms", "raw_generate_ms")}
        return (f"queue {tot['queue_ms']:.0f}, prompt {tot['prompt_ms']:.0f} (raw {tot['raw_prompt_ms']:.0f}), generate {tot['generate_ms']:.0f}"
                f" (raw {tot['raw_generate_ms']:.0f}), post {tot['postprocess_ms']:.0f}, protocol {tot['client_ms'] - tot['total_ms']:.0f}")

    add("   cold stages, summed ms", "", stages)
    add("b. prompt tokens evaluated / diverging key (max)", "<= 3", lambda r: str(r["b_diverge"]["prompt_tokens_evaluated_max"]))
    add("b. diverging latency / decode time (p50)", "<= 1.05", lambda r: f"{r['b_diverge']['latency_over_decode_p50']:.3f}")
    add("c. following keystroke p50 ms", "<= 20", lambda r: f"{r['c_follow']['p50_ms']:.2f} ({'/'.join(r['c_follow']['sources'])})")
    add("d. session model time: server / naive PSM", "<= 0.5", lambda r: f"{r['d_session']['ratio']:.3f}")
    add("   server | naive model ms", "", lambda r: f"{r['d_session']['server_model_ms']:.0f} | {r['d_session']['naive_model_ms']:.0f}")
    add("d. session model time: server / llama-server best", "<= 0.5",
        lambda r: f"{r['d_session']['ratio_vs_llama_server']:.3f}" if r["d_session"].get("ratio_vs_llama_server") else "-")
    add("   llama-server /infill ms (default | --spm-infill)", "",
        lambda r: "{:.0f} | {:.0f}".format(r["d_session"]["llama_server"]["default"]["model_ms"],
                                          r["d_session"]["llama_server"]["spm_infill"]["model_ms"])
        if "llama_server" in r["d_session"] else "-")
    add("   llama-server prompt tokens / key p50 (default | spm)", "",
        lambda r: "{} | {}".format(r["d_session"]["llama_server"]["default"]["prompt_tokens_evaluated_p50"],
                                   r["d_session"]["llama_server"]["spm_infill"]["prompt_tokens_evaluated_p50"])
        if "llama_server" in r["d_session"] else "-")
    add("   keystrokes, model calls, typed along", "", lambda r: f"{r['d_session']['keystrokes']}, {r['d_session']['server_model_calls']}, {r['d_session']['typed_along']}")
    for k in sorted({k for r in results for k in r["e_per_kind"]}):
        add(f"e. {k} p50 / p95 ms", "", lambda r, k=k: f"{r['e_per_kind'][k]['p50_ms']:.1f} / {r['e_per_kind'][k]['p95_ms']:.1f}" if k in r["e_per_kind"] else "-")
    add("f. server RSS - model file (MB)", "<= 300", lambda r: f"{r['f_memory']['rss_over_file_mb']:.0f}")
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="a models.toml name or .gguf path (repeatable; default sc2-tiny)")
    ap.add_argument("--with-3b", action="store_true", help="add the random-weight 3B-shaped Q4_K_M from bench/convert_rss.py")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--context-budget", type=int, default=1536)
    ap.add_argument("--keys", type=int, default=50, help="keystrokes in the scripted session")
    ap.add_argument("--keys-3b", type=int, default=30)
    ap.add_argument("--threads-3b", type=int, default=1)
    ap.add_argument("--max-tokens-3b", type=int, default=16)
    ap.add_argument("--context-budget-3b", type=int, default=512)
    ap.add_argument("--cold-spots-3b", type=int, default=3, help="cold requests in (a) for the 3B (1-3)")
    ap.add_argument("--token-healing", choices=["on", "off"], default="on")
    ap.add_argument("--no-llama-server", action="store_true", help="skip the llama-server /infill reference")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    heal = args.token_healing == "on"
    if not args.no_llama_server and not llama_server_ref.available():
        print(f"note: no llama-server reference: {llama_server_ref.BUILD_HINT}", file=sys.stderr)
    small = Sizing(args.keys, args.threads, args.max_tokens, args.context_budget, heal,
                   llama_server=not args.no_llama_server)
    results = [bench_model(m, small) for m in (args.model or ["sc2-tiny"])]
    if args.with_3b:
        from bench.convert_rss import q4_k_m_gguf

        big = Sizing(args.keys_3b, args.threads_3b, args.max_tokens_3b, args.context_budget_3b, heal, args.cold_spots_3b,
                     llama_server=not args.no_llama_server)
        results.append(bench_model(str(q4_k_m_gguf()), big))
        results[-1]["model"] = "3b-shaped-q4_k_m"
    print(table(results))
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
