"""The whole loop as a user walks it, on CPU with the embedded model: a local hub on 127.0.0.1 serves
sc2-tiny's checkpoint under a StarCoder2-like repository name; `sc2lsp models pull NAME --checkpoint`;
`sc2lsp tune REPO` (prepare -> LoRA -> eval base vs tuned -> gate -> register NAME-lora -> report) run
from an unrelated directory, killed during training and run again (it goes on where it stopped);
`sc2lsp complete --model NAME-lora` answers; a run made worse on purpose (lr far too high) is refused
by the gate and registers nothing.

The repository is pluggy from site-packages (installed wherever pytest runs; sc2-tiny was pretrained on
the standard library only, and no other test trains on it). Assertions compare the tuned model with
the base measured in the same run, never with fixed numbers. Sized to be short on a loaded machine:
10 LoRA steps of 4 rows of 128 tokens (held-out loss falls well within that at lr 5e-3).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))  # the local hub of the pull tests
from test_pull import Hub  # noqa: E402
from test_pull_checkpoint import CKPT_REPO, serve_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "models" / "sc2-tiny"

PREPARE = ["seq_len=128", "epochs=1", "heldout_fraction=0.2"]
TRAIN = ["max_steps=10", "batch_size=4", "lr=5e-3", "warmup_steps=2", "r=32", "alpha=64", "eval_every=1000",
         "save_every=2", "log_every=1", "max_minutes=0", "threads=2"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (TINY / "hf" / "model.safetensors").is_file(), reason="models/sc2-tiny/hf not built yet"),
]


class User:
    """A user's machine: their HF cache, config, cache and data dirs, and a working directory that is
    neither the project nor the repository."""

    def __init__(self, tmp: Path, endpoint: str):
        self.tmp, self.cwd = tmp, tmp / "elsewhere"
        self.cwd.mkdir()
        for d in ("hf", "config/sc2lsp", "cache", "data"):
            (tmp / d).mkdir(parents=True, exist_ok=True)
        (tmp / "config/sc2lsp/models.toml").write_text(
            '[models.sc2-hub]\ndescription = "sc2-tiny with its checkpoint on a hub"\nlicense = "PSF-2.0"\n'
            f'context_length = 2048\ndefault_quant = "Q8_0"\nhf_repo = "{CKPT_REPO}"\n'
            f'[models.sc2-hub.quants.Q8_0]\npath = "{TINY / "sc2-tiny-q8_0.gguf"}"\n')
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "SC2LSP_", "XDG_"))}
        self.env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp / "hf"), XDG_CONFIG_HOME=str(tmp / "config"),
                        XDG_CACHE_HOME=str(tmp / "cache"), XDG_DATA_HOME=str(tmp / "data"),
                        HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
                        PYTHONPATH=str(ROOT))

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sc2lsp.cli", *args]

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(*args), cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def tune_args(self, repo: Path, name: str, train: list[str], per_file: int = 2) -> list[str]:
        args = ["tune", str(repo), "--base", "sc2-hub", "--name", name, "--per-file", str(per_file), "--no-progress"]
        for kv in PREPARE:
            args += ["--prepare", kv]
        for kv in train:
            args += ["--train", kv]
        return args

    def work(self, name: str) -> Path:
        return self.tmp / "cache" / "sc2lsp" / "runs" / "tune" / name

    def models(self) -> dict:
        r = self.run("models", "list", "--json")
        assert r.returncode == 0, r.stderr
        return {m["name"]: m for m in json.loads(r.stdout)["models"]}


def test_pull_checkpoint_tune_resume_serve_and_gate(tmp_path):
    import pluggy

    hub = Hub()
    try:
        serve_checkpoint(hub)
        user = User(tmp_path, hub.url)
        t0 = time.time()
        r = user.run("models", "pull", "sc2-hub", "--checkpoint")
        assert r.returncode == 0, r.stderr
        times = {"pull": time.time() - t0}
    finally:
        hub.close()

    repo = tmp_path / "pluggy"
    shutil.copytree(Path(pluggy.__file__).parent, repo, ignore=shutil.ignore_patterns("__pycache__"))

    # killed during training, then the same command again goes on where it stopped
    t0 = time.time()
    p = subprocess.Popen(user.cmd(*user.tune_args(repo, "plug", TRAIN)), cwd=user.cwd, env=user.env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = user.work("plug") / "run" / "ckpt.pt"
    deadline = time.time() + 600
    while time.time() < deadline and not ckpt.is_file() and p.poll() is None:
        time.sleep(0.2)
    assert ckpt.is_file(), p.communicate()[0][-3000:]
    p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=120)[0]
    assert p.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "go on where it stopped" in out, out[-2000:]
    assert not (user.work("plug") / "stages" / "train.json").exists()

    r = user.run(*user.tune_args(repo, "plug", TRAIN))
    times["tune"] = time.time() - t0
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "[prepare] done earlier" in r.stdout and "resumed from" in r.stdout, r.stdout[-3000:]
    result = json.loads((user.work("plug") / "result.json").read_text())
    ev = result["eval"]
    print(json.dumps({"times": times, "stages": result["stages"], "eval": ev}, indent=1))
    assert result["registered"] and result["better"] and result["model"] == "plug-lora"
    assert ev["tuned"]["heldout_loss"] < ev["base"]["heldout_loss"]
    assert ev["cases"] >= 4
    report = (user.work("plug") / "tune-report.md").read_text()
    assert "| held-out loss" in report and "registered plug-lora" in report
    assert (user.work("plug") / "loss.png").read_bytes()[:4] == b"\x89PNG"

    entry = user.models()["plug-lora"]
    assert entry["base"] == "sc2-hub" and Path(entry["lora"]).is_file()
    target = next((user.work("plug") / "data" / "heldout").rglob("*.py"))
    r = user.run("complete", str(target), "--line", "3", "--col", "1", "--model", "plug-lora", "--max-tokens", "16",
                 "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["generated_tokens"] > 0 and out["stop_reason"] != "error", out

    # the gate: a run with a learning rate far too high gets worse and registers nothing
    r = user.run(*user.tune_args(repo, "plugbad", [*TRAIN[1:], "max_steps=3", "lr=1.0"], per_file=1))
    assert r.returncode == 3, (r.stdout[-3000:], r.stderr[-3000:])
    bad = json.loads((user.work("plugbad") / "result.json").read_text())
    assert not bad["registered"] and not bad["better"]
    assert "not registered" in r.stdout and "held-out loss" in r.stdout
    assert "plugbad-lora" not in user.models()
    assert not list((tmp_path / "data").rglob("plugbad*"))
