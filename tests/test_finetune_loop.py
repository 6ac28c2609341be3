"""The whole loop on CPU with the embedded model, as a user runs it: prepare an unseen repository, LoRA,
eval (tuned beats base on held-out loss and on next-line exact match), export (merged GGUF + adapter
GGUF, registered by name), serve the adapter on its base (`sc2lsp complete --model NAME-lora`).

The repository is pygls from site-packages (a dependency of sc2lsp, so it is installed wherever the
tests run; sc2-tiny was pretrained on the standard library only). Every assertion compares the tuned
model with the base measured in the same run, never with fixed numbers, so it holds for any sc2-tiny.
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

#: the run the test makes (and docs/finetune.md shows): held-out 20% of the files, short rows
PREPARE = ("seq_len=256", "epochs=2", "heldout_fraction=0.2")
TRAIN = ("max_steps=150", "batch_size=8", "lr=5e-3", "warmup_steps=8", "r=32", "alpha=64", "eval_every=1000",
         "save_every=1000", "max_minutes=0", "threads=2", "progress=false", "plot=false")
EVAL = ("--per-file", "20")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BASE / "model.safetensors").is_file(), reason="models/sc2-tiny/hf not built yet"),
]


def _run(*args: str, env: dict | None = None, module: str = "finetune") -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT, timeout=3600,
                       env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    return r


def test_prepare_lora_eval_export_serve(tmp_path):
    import pygls

    repo = tmp_path / "pygls"
    shutil.copytree(Path(pygls.__file__).parent, repo, ignore=shutil.ignore_patterns("__pycache__"))
    data, run, cfg_home = tmp_path / "data", tmp_path / "run", tmp_path / "config"
    env = {"XDG_CONFIG_HOME": str(cfg_home)}  # the user's models.toml of this test

    _run("prepare", str(repo), "--out", str(data), "--tokenizer", str(BASE), "--no-progress", *PREPARE)
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["heldout_files"] >= 3, manifest

    _run("train", "--config", str(PRESET), f"base={BASE}", f"data={data}", f"out={run}", *TRAIN)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["heldout_loss"] < summary["base_heldout_loss"] - 0.1, summary

    res = json.loads(_run("export", str(run), "--name", "pygls", "--quant", "q8_0", "--adapter", env=env).stdout)
    assert Path(res["gguf"]).is_file() and Path(res["adapter_gguf"]).is_file()
    assert res["registered"] == ["pygls", "pygls-lora"]  # sc2-tiny's entry serves as the adapter's base

    # base vs tuned on the held-out files: llama.cpp (the serving path) for exact match, transformers for loss
    r = _run("eval", "--model", "sc2-tiny", "--model", "pygls-lora", "--model", str(BASE), "--model", str(run),
             "--data", str(data), *EVAL, "--json", env=env)
    res = json.loads(r.stdout)
    base, tuned = res["sc2-tiny"], res["pygls-lora"]
    base_hf, tuned_hf = res[str(BASE)], res[str(run)]
    print(json.dumps({k: {m: v for m, v in x.items() if m != "samples"} for k, x in res.items()}, indent=1))
    assert base["cases"] == tuned["cases"] >= 50
    assert tuned_hf["heldout_loss"] < base_hf["heldout_loss"] - 0.1
    assert tuned["exact_match"] > base["exact_match"], (base, tuned)
    assert tuned["edit_similarity"] > base["edit_similarity"], (base, tuned)
    assert tuned_hf["exact_match"] > base_hf["exact_match"], (base_hf, tuned_hf)

    # serve: one completion from the adapter on its base, and from the merged GGUF
    target = data / "heldout" / json.loads((data / "heldout_files.json").read_text())["files"][0]
    for model in ("pygls-lora", "pygls"):
        r = _run("complete", str(target), "--line", "3", "--col", "1", "--model", model, "--max-tokens", "16",
                 "--json", module="sc2lsp.cli", env=env)
        out = json.loads(r.stdout)
        assert out["generated_tokens"] > 0 and out["stop_reason"] != "error", out
