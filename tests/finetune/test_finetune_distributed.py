"""FSDP2 pretraining with 2 CPU processes (gloo): same loss curve as one process, resumes after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "finetune" / "configs" / "debug.toml"
STEPS = 30


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from finetune.prepare import RepoDataConfig, prepare
    from finetune.tokenizer import train_bpe
    from test_finetune_lora import _code

    tmp = tmp_path_factory.mktemp("dist")
    train_bpe([_code(i) for i in range(40)], vocab_size=400, show_progress=False).save_pretrained(tmp / "tok")
    for i in range(10):
        (tmp / "repo" / "pkg").mkdir(parents=True, exist_ok=True)
        (tmp / "repo" / "pkg" / f"m{i}.py").write_text(_code(200 + i))
    prepare([tmp / "repo"], RepoDataConfig(out=str(tmp / "data"), tokenizer=str(tmp / "tok"), seq_len=64, epochs=2,
                                           progress=False))
    return tmp / "data"


def _cmd(nproc: int, data: Path, out: Path) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    args = ["-m", "finetune", "pretrain", "--config", str(DEBUG), f"data={data}", f"out={out}", "batch_size=4",
            f"max_steps={STEPS}", "threads=1"]
    return (launcher if nproc > 1 else [sys.executable]) + args


def _run(cmd, **kw):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, **kw)


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_fsdp2_two_processes_match_one_and_resume(data, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    r = _run(_cmd(1, data, one))
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run(_cmd(2, data, two))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "FSDP2 over 2 processes (gloo)" in r.stdout
    a, b = _losses(one), _losses(two)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    for s in a:
        assert b[s] == pytest.approx(a[s], abs=2e-3), s
    assert a[STEPS] < a[1] - 0.5  # it learns
    assert json.loads((two / "summary.json").read_text())["world_size"] == 2
    assert (two / "hf" / "model.safetensors").is_file()

    # killed with SIGKILL (launcher and workers) after a checkpoint, then resumed: the same curve
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    p = subprocess.Popen(_cmd(2, data, run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
                         start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        m = run / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 5 and (run / "ckpt.pt").exists():
            break
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (run / "summary.json").exists()
    r = _run(_cmd(2, data, run))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout
    c = _losses(run)
    assert sorted(c) == list(range(1, STEPS + 1))
    for s in c:
        assert c[s] == pytest.approx(b[s], abs=2e-3), s
