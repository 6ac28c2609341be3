"""The parts of the one-step fine-tuning path that need no training: defaults independent of the current
directory, the missing-extras message, stage stamps, progress messages, acceptance statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_finetune_prepare_from_another_directory_uses_the_projects_tokenizer(tmp_path):
    """`python -m finetune prepare myrepo --out data` from the user's own directory (issue 13's first item)."""
    repo = tmp_path / "myrepo"
    repo.mkdir()
    for i in range(3):
        (repo / f"mod{i}.py").write_text("".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n\n" for j in range(40)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "finetune", "prepare", "myrepo", "--out", "data", "--no-progress",
                        "seq_len=64", "attribution=false"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["config"]["tokenizer"] == str(ROOT / "models" / "sc2-tiny" / "hf")
    assert manifest["kept_files"] == 3


def test_defaults_never_point_at_the_current_directory(monkeypatch, tmp_path):
    from finetune.config import load
    from finetune.paths import preset_path, runs_dir
    from finetune.prepare import RepoDataConfig
    from finetune.train import LoraTrainConfig

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SC2LSP_RUNS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runs_dir() == tmp_path / "cache" / "sc2lsp" / "runs"
    for cfg in (RepoDataConfig(), LoraTrainConfig()):
        for k in ("out", "data", "tokenizer", "base"):
            if hasattr(cfg, k):
                assert Path(getattr(cfg, k)).is_absolute(), (k, getattr(cfg, k))
    assert preset_path("lora-sc2-tiny") == ROOT / "finetune" / "configs" / "lora-sc2-tiny.toml"
    assert preset_path("finetune/configs/lora-debug.toml").is_file()
    cfg = load(LoraTrainConfig, "lora-sc2-tiny", ["out=mine"])
    assert cfg.base == "sc2-tiny" and cfg.out == "mine"  # a model name; the user's own path stays theirs


def test_missing_training_extras_is_one_message_naming_the_install(monkeypatch, tmp_path, capsys):
    from sc2lsp import cli, tuning

    monkeypatch.setattr(tuning, "TRAIN_MODULES", ("torch", "no_such_module_for_sc2lsp"))
    assert cli.main(["tune", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_module_for_sc2lsp" in err[0] and "pip install" in err[0] and "[train]" in err[0]
    assert cli.main(["tune", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_stage_stamps_skip_only_complete_stages(tmp_path):
    from finetune.tune import Stamps, Tune, TuneOptions

    (tmp_path / "repo").mkdir()
    t = Tune(TuneOptions(repo=str(tmp_path / "repo"), work=str(tmp_path / "work")))
    calls = []
    work = lambda: calls.append(1) or {"n": len(calls)}  # noqa: E731
    assert t.stage("x", "k1", lambda r: True, work) == {"n": 1}
    assert t.stage("x", "k1", lambda r: True, work) == {"n": 1} and len(calls) == 1  # done: skipped
    assert t.stage("x", "k1", lambda r: False, work) == {"n": 2}  # its outputs are gone: run again
    assert t.stage("x", "k2", lambda r: True, work) == {"n": 3}  # other inputs: run again
    (tmp_path / "work" / "stages" / "x.json").write_text("{broken")
    assert Stamps(tmp_path / "work").get("x", "k2") is None
    assert t.name == "repo"


def test_progress_messages_of_the_pipeline_events():
    from sc2lsp.lsp.features.tune import describe, table

    msg, pct = describe({"stage": "train", "step": 30, "total": 60, "loss": 2.5, "eta_s": 95})
    assert msg == "train: step 30/60, loss 2.5, ETA 1m35s" and 5 < pct < 86
    assert describe({"stage": "prepare", "status": "skip"})[0] == "prepare: done earlier"
    assert describe({"stage": "eval", "model": "tuned", "total": 12})[0] == "eval: tuned model on 12 held-out cases"
    t = table({"base": "sc2-tiny", "model": "x-lora", "eval": {"base": {"heldout_loss": 3.9, "exact_match": 0.0},
                                                                 "tuned": {"heldout_loss": 2.8, "exact_match": 0.1}}})
    assert "3.900" in t and "2.800" in t and "x-lora" in t and "-" in t  # edit similarity unknown


def test_acceptance_statistics_per_model_and_day(tmp_path):
    from sc2lsp.stats import Recorder, aggregate, read

    rec = Recorder(tmp_path / "s" / "stats.jsonl")
    for ms in (10, 20, 30, 40):
        rec.shown("base", ms, 12)
    rec.accepted("base", 12, whole=True)
    rec.accepted("base", 5, whole=False)
    rec.shown("tuned", 50, 8)
    assert rec.flush()
    lines = read(tmp_path / "s" / "stats.jsonl") + ["not json", '{"model": "x"}']
    rows = {r.model: r.as_dict() for r in aggregate(lines)}
    assert rows["base"]["shown"] == 4 and rows["base"]["accepted_whole"] == 1 and rows["base"]["accepted_partly"] == 1
    assert rows["base"]["chars_accepted"] == 17 and rows["base"]["acceptance_rate"] == 0.5
    assert rows["base"]["latency_p50_ms"] == 30 and rows["base"]["latency_p95_ms"] == 40
    assert rows["tuned"]["shown"] == 1 and rows["tuned"]["acceptance_rate"] == 0


def test_sc2lsp_stats_prints_the_table(tmp_path):
    from sc2lsp.stats import Recorder

    f = tmp_path / "stats.jsonl"
    rec = Recorder(f)
    rec.shown("sc2-tiny", 12.5, 3)
    rec.accepted("sc2-tiny", 3, whole=True)
    assert rec.flush()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SC2LSP_STATS_FILE": str(f)}
    r = subprocess.run([sys.executable, "-m", "sc2lsp.cli", "stats"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "sc2-tiny" in r.stdout and "100.0%" in r.stdout and "never sent" in r.stdout
    r = subprocess.run([sys.executable, "-m", "sc2lsp.cli", "stats", "--json", "--total"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert json.loads(r.stdout)["rows"][0]["day"] == "all"


def test_statistics_never_wait_for_the_disk(tmp_path):
    """A stats file whose open blocks (a FIFO nobody reads) must not block the caller (the server's
    event loop); the events are written once the file can be opened."""
    from sc2lsp.stats import Recorder

    fifo = tmp_path / "stats.jsonl"
    os.mkfifo(fifo)
    rec = Recorder(fifo)
    t0 = time.monotonic()
    for _ in range(50):
        rec.shown("m", 1.0, 1)
    assert time.monotonic() - t0 < 0.5
    assert not rec.flush(timeout=0.2)  # still blocked: nothing reads the FIFO
    with open(fifo, encoding="utf-8") as reader:  # unblocks the writer's open
        first = reader.readline()
    assert json.loads(first)["event"] == "shown"


@pytest.mark.parametrize("preset", ["lora-sc2-tiny", "lora-starcoder2-3b", "lora-starcoder2-cpu"])
def test_tune_presets_parse(preset):
    from finetune.config import load
    from finetune.train import LoraTrainConfig

    assert load(LoraTrainConfig, preset).max_steps >= 1


def test_one_run_per_work_directory(tmp_path):
    import fcntl

    from finetune.tune import Tune, TuneError, TuneOptions

    (tmp_path / "repo").mkdir()
    t = Tune(TuneOptions(repo=str(tmp_path / "repo"), work=str(tmp_path / "work")))
    with open(tmp_path / "work" / ".lock", "w") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(TuneError, match="another `sc2lsp tune` is running"):
            t.run()
