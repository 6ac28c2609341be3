"""llama.cpp's own ``llama-server`` as a reference for the benches (not part of sc2lsp).

The binary is built once by ``bench/build_llama_server.sh`` from the llama.cpp tree vendored in
llama-cpp-python's source distribution (the same llama.cpp version sc2lsp runs in process) into
``~/.cache/sc2lsp/llama-server/bin`` (``SC2LSP_LLAMA_SERVER_DIR`` moves it). Nothing of llama.cpp
is in the repository.

* ``LlamaServer``: start/stop one server on 127.0.0.1 (``-np`` slots, ``--spm-infill``), its RSS.
  Flash attention as sc2lsp's in-process llama.cpp chooses it (``flash_attn_for``) and
  weight repacking off (``--no-repack``, as sc2lsp's ``repackWeights`` default): the same kernels
  as sc2lsp in process, so the same greedy text (with flash attention on one side only, sc2-tiny's
  greedy text differed after a few tokens on one of two prompts). ``same_batches`` also evaluates
  prompts in sc2lsp's chunks (``eval_chunk``): the tests compare text with it; the benches leave
  llama-server's own (faster) batch size.
* ``replay_infill``: a recorded editing session (the keystrokes of ``bench/latency.py``) sent as
  ``/infill`` requests with ``cache_prompt``, the way llama.vim / llama.vscode use llama-server;
  the model time is the server's own ``timings`` (prompt + predicted ms).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sc2lsp.backends.llama_cpp import SMALL_MODEL_BYTES, LlamaSettings
from sc2lsp.core.budget import approx_tokens, plan_budget

BUILD_HINT = "build it once with bench/build_llama_server.sh (~10+ min on 2 cores; cached outside the repo)"


def binary(name: str = "llama-server") -> Path:
    d = Path(os.environ.get("SC2LSP_LLAMA_SERVER_DIR", Path.home() / ".cache" / "sc2lsp" / "llama-server"))
    return d / "bin" / name


def flash_attn_for(model: Path) -> bool:
    """Whether sc2lsp's in-process llama.cpp runs ``model`` with flash attention (its automatic
    choice: on for a large model), so a server can match it."""
    s = LlamaSettings()
    large = os.path.getsize(model) >= SMALL_MODEL_BYTES
    return large if s.flash_attn is None else s.flash_attn


#: ``python -m llama_cpp.server`` (llama-cpp-python's OpenAI-compatible server) with sc2lsp's default of
#: no weight repacking (``use_extra_bufts`` off; the server has no flag for it): the same kernels as the
#: in-process backend, and on CPUs with AMX (Sapphire Rapids) llama.cpp 0.3.36's extra buffer types
#: crash sc2-tiny's Q8_0 weights with a segmentation fault in the first ``llama_decode``
_NO_REPACK_SERVER = (
    "import runpy\n"
    "from sc2lsp.backends.llama_cpp import repacking\n"
    "with repacking(False):\n"
    "    runpy.run_module('llama_cpp.server', run_name='__main__')\n"
)


def llama_cpp_python_server(*args: str) -> list[str]:
    """The command line of llama-cpp-python's server with ``args`` (``--model ...``)."""
    return [sys.executable, "-c", _NO_REPACK_SERVER, *args]


def available() -> bool:
    return binary().is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class LlamaServer:
    def __init__(self, model: Path, *, threads: int, n_ctx: int, slots: int = 1, spm_infill: bool = False,
                 log: Path | None = None, alias: str | None = None, repack: bool = False,
                 same_batches: bool = False):
        if not available():
            raise SystemExit(f"llama-server not found at {binary()}: {BUILD_HINT}")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [str(binary()), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
                    "-t", str(threads), "-tb", str(threads), "-c", str(n_ctx * slots), "-np", str(slots),
                    "--no-webui", "-fa", "on" if flash_attn_for(model) else "off"]
        if same_batches:  # prompt batches of sc2lsp's eval_chunk: the same matmul shapes, the same rounding
            self.cmd += ["-b", str(LlamaSettings().eval_chunk), "-ub", str(LlamaSettings().eval_chunk)]
        self.cmd += ([] if repack else ["--no-repack"]) + (["--spm-infill"] if spm_infill else [])
        self.cmd += ["-a", alias] if alias else []
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 600.0) -> "LlamaServer":
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"llama-server exited ({self.proc.returncode}): {' '.join(self.cmd)}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"llama-server did not become healthy in {timeout} s")

    @property
    def rss(self) -> int:
        return rss_bytes(self.proc.pid) if self.proc else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def post(self, path: str, body: dict, timeout: float = 3600) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())


def replay_infill(server: LlamaServer, log: list[dict], *, budget: int, n_ctx: int, n_predict: int) -> dict:
    """Every keystroke of ``log`` (entries with ``text``, ``offset``) as one ``/infill`` request with
    ``cache_prompt``; prefix and suffix cut by the same budget as the naive reference of
    bench/latency.py. Returns the server's model time and the prompt tokens it evaluated."""
    total = max(64, min(budget, n_ctx - n_predict - 48))
    model_ms = wall_ms = 0.0
    evaluated: list[int] = []
    for e in log:
        prefix, suffix = e["text"][: e["offset"]], e["text"][e["offset"]:]
        p, s = plan_budget(prefix, suffix, total, approx_tokens).cut(prefix, suffix)
        t0 = time.perf_counter()
        r = server.post("/infill", {"input_prefix": p, "input_suffix": s, "input_extra": [], "n_predict": n_predict,
                                    "cache_prompt": True, "temperature": 0, "id_slot": 0})
        wall_ms += (time.perf_counter() - t0) * 1000
        t = r.get("timings", {})
        model_ms += float(t.get("prompt_ms", 0)) + float(t.get("predicted_ms", 0))
        evaluated.append(int(t.get("prompt_n", 0)))
    evaluated.sort()
    return {"model_ms": round(model_ms, 1), "wall_ms": round(wall_ms, 1), "requests": len(log),
            "prompt_tokens_evaluated_p50": evaluated[len(evaluated) // 2] if evaluated else None,
            "prompt_tokens_evaluated_max": evaluated[-1] if evaluated else None}


def llama_server_reference(model: Path, log: list[dict], *, threads: int, n_ctx: int, budget: int,
                           n_predict: int) -> dict:
    """The session on llama-server's /infill in its default (PSM) order and with --spm-infill; the
    best of the two is the reference for (d)."""
    out: dict = {}
    for name, spm in (("default", False), ("spm_infill", True)):
        with LlamaServer(model, threads=threads, n_ctx=n_ctx, spm_infill=spm) as srv:
            out[name] = replay_infill(srv, log, budget=budget, n_ctx=n_ctx, n_predict=n_predict)
    out["best"] = min(("default", "spm_infill"), key=lambda k: out[k]["model_ms"])
    return out
