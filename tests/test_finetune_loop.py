"""The whole loop on CPU with the embedded model: prepare an unseen repository, LoRA, eval, export, complete.

The repository is pygls (a dependency of sc2lsp, so it is installed wherever the tests run; sc2-tiny
was pretrained on the standard library only). Skipped until ``models/sc2-tiny/hf`` exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "models" / "sc2-tiny" / "hf"
PRESET = ROOT / "finetune" / "configs" / "lora-sc2-tiny.toml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BASE / "model.safetensors").is_file(), reason="models/sc2-tiny/hf not built yet"),
    # not yet run to completion on this machine (written while sc2-tiny was training): opt-in until it is
    pytest.mark.skipif(os.environ.get("SC2LSP_FINETUNE_LOOP") != "1", reason="set SC2LSP_FINETUNE_LOOP=1 to run"),
]


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=900,
                       env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    return r


def test_prepare_lora_eval_export_complete(tmp_path):
    import pygls

    repo = tmp_path / "pygls"
    shutil.copytree(Path(pygls.__file__).parent, repo, ignore=shutil.ignore_patterns("__pycache__"))
    data, run = tmp_path / "data", tmp_path / "run"
    _run("-m", "finetune", "prepare", str(repo), "--out", str(data), "--tokenizer", str(BASE), "--no-progress",
         "seq_len=256", "epochs=2", "heldout_fraction=0.15")
    _run("-m", "finetune", "train", "--config", str(PRESET), f"base={BASE}", f"data={data}", f"out={run}",
         "max_steps=40", "batch_size=4", "warmup_steps=5", "eval_every=40", "max_minutes=0", "save_every=20",
         "progress=false")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["heldout_loss"] < summary["base_heldout_loss"] - 0.05, summary

    cfg_home = tmp_path / "config"
    res = json.loads(_run("-m", "finetune", "export", str(run), "--name", "pygls-lora", "--quant", "q8_0",
                          env={"XDG_CONFIG_HOME": str(cfg_home)}).stdout)
    assert Path(res["gguf"]).is_file() and (cfg_home / "sc2lsp" / "models.toml").is_file()

    r = _run("-m", "finetune", "eval", "--model", str(BASE), "--model", str(run), "--model", "pygls-lora",
             "--data", str(data), "--per-file", "8", "--json", env={"XDG_CONFIG_HOME": str(cfg_home)})
    res = json.loads(r.stdout)
    base, tuned, gguf = res[str(BASE)], res[str(run)], res["pygls-lora"]
    assert tuned["heldout_loss"] < base["heldout_loss"]
    assert tuned["edit_similarity"] >= base["edit_similarity"] - 0.02
    assert abs(gguf["exact_match"] - tuned["exact_match"]) <= 0.1  # Q8_0 GGUF ~ the HF model

    target = repo / "server.py" if (repo / "server.py").exists() else next(repo.glob("*.py"))
    r = subprocess.run([sys.executable, "-m", "sc2lsp.cli", "complete", str(target), "--line", "5", "--col", "1",
                        "--model", "pygls-lora", "--max-tokens", "16", "--json"], capture_output=True, text=True,
                       cwd=ROOT, timeout=300, env={**os.environ, "XDG_CONFIG_HOME": str(cfg_home)})
    assert r.returncode == 0, r.stderr[-2000:]
