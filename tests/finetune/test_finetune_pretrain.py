"""Data preparation and pretraining on a small slice of the stdlib: runs, learns, resumes after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from finetune.config import ConfigError, PretrainConfig, load
from finetune.prepare_stdlib import StdlibDataConfig, prepare
from sc2lsp.core.tokens import ENDOFTEXT, FILE_SEP, FIM_PREFIX, SPECIAL_TOKENS

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "finetune" / "configs" / "debug.toml"


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    manifest = prepare(StdlibDataConfig(out=str(out), vocab_size=800, seq_len=128, epochs=1, max_files=40,
                                        heldout_fraction=0.1))
    return out, manifest


def test_prepare_writes_starcoder2_format_data(small_data):
    out, manifest = small_data
    from finetune.tokenizer import load as load_tok

    tok = load_tok(out / "tokenizer")
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(38))
    rows = np.load(out / "train.npy")
    assert rows.shape[1] == 128 and rows.shape[0] > 10 and manifest["train_tokens"] == rows.size
    text = tok.decode(rows[:20].reshape(-1).tolist())
    assert FILE_SEP in text and ENDOFTEXT in text and FIM_PREFIX in text
    kept = [f for f in manifest["files"] if f["kept"]]
    assert {f["split"] for f in kept} == {"train", "heldout"}
    assert all(f["reason"] for f in manifest["files"] if not f["kept"])
    held = json.loads((out / "heldout_files.json").read_text())["files"]
    assert held == [f["path"] for f in kept if f["split"] == "heldout"]


def test_config_rejects_unknown_key_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'"):
        load(PretrainConfig, DEBUG, ["learning_rate=1"])
    with pytest.raises(ConfigError, match="max_steps: expected int"):
        load(PretrainConfig, DEBUG, ["max_steps=many"])
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(PretrainConfig, bad)
    cfg = load(PretrainConfig, DEBUG, ["lr=0.01", "max_steps=3"])
    assert cfg.lr == 0.01 and cfg.max_steps == 3 and cfg.shape == "debug"


def _pretrain(data: Path, out: Path, *extra: str, wait: bool = True):
    cmd = [sys.executable, "-m", "finetune", "pretrain", "--config", str(DEBUG), f"data={data}", f"out={out}",
           "max_steps=24", "threads=1", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_pretrain_learns_and_resumes_after_sigkill(small_data, tmp_path):
    data, _ = small_data
    ref = tmp_path / "ref"
    r = _pretrain(data, ref)
    assert r.returncode == 0, r.stderr[-2000:]
    ref_losses = _losses(ref)
    assert sorted(ref_losses) == list(range(1, 25))
    assert np.mean([ref_losses[s] for s in (22, 23, 24)]) < np.mean([ref_losses[s] for s in (1, 2, 3)]) - 0.5
    summary = json.loads((ref / "summary.json").read_text())
    assert summary["step"] == 24 and np.isfinite(summary["heldout_loss"])
    assert (ref / "hf" / "model.safetensors").is_file() and (ref / "hf" / "tokenizer.json").is_file()

    # the same run, killed with SIGKILL after a checkpoint past step 8, then resumed
    run = tmp_path / "killed"
    p = _pretrain(data, run, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        m = run / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 9 and (run / "ckpt.pt").exists():
            break
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (run / "summary.json").exists()
    r = _pretrain(data, run)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stdout
    resumed = _losses(run)
    assert sorted(resumed) == list(range(1, 25))
    for step in range(1, 25):
        assert resumed[step] == pytest.approx(ref_losses[step], abs=2e-3), step
