"""LoRA training on a real tiny Starcoder2 + real prepared data: learns, resumes after SIGKILL, bad input."""

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

from finetune.config import ConfigError, load
from finetune.train import LoraTrainConfig, TrainError, check_base

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "finetune" / "configs").glob("lora-*.toml"))
DEBUG = ROOT / "finetune" / "configs" / "lora-debug.toml"


def _code(seed: int) -> str:
    import random

    rng = random.Random(seed)
    names = ["load", "save", "parse", "render", "fetch", "merge", "split", "check"]
    out = [f'"""Module {seed}."""\n\nimport os\n']
    for i in range(25):
        a, b = rng.sample(names, 2)
        out.append(f"def {a}_{b}_{i}(path, value={rng.randint(0, 9)}):\n    if not os.path.exists(path):\n"
                   f"        return None\n    return {b}(path) + value\n")
    return "\n".join(out)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A debug-shaped Starcoder2 checkpoint with a small StarCoder2-convention tokenizer, and prepared data."""
    from finetune.model import build_model
    from finetune.prepare import RepoDataConfig, prepare
    from finetune.tokenizer import train_bpe

    tmp = tmp_path_factory.mktemp("lora")
    tok = train_bpe([_code(i) for i in range(40)], vocab_size=400, show_progress=False)
    base = tmp / "base"
    build_model("debug", len(tok), seed=0).save_pretrained(base)
    tok.save_pretrained(base)
    repo = tmp / "repo"
    for i in range(10):
        (repo / "pkg").mkdir(parents=True, exist_ok=True)
        (repo / "pkg" / f"m{i}.py").write_text(_code(100 + i))
    data = tmp / "data"
    prepare([repo], RepoDataConfig(out=str(data), tokenizer=str(base), seq_len=64, epochs=2, progress=False))
    return base, data


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_parses(preset):
    cfg = load(LoraTrainConfig, preset)
    assert cfg.target_modules and cfg.max_steps >= 1


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown config key 'rank'"):
        load(LoraTrainConfig, DEBUG, ["rank=8"])
    with pytest.raises(TrainError, match="'gate_proj' is not a Starcoder2 module"):
        load(LoraTrainConfig, DEBUG, ["targets=q_proj,gate_proj"])


def _train(base: Path, data: Path, out: Path, *extra: str, wait: bool = True):
    cmd = [sys.executable, "-m", "finetune", "train", "--config", str(DEBUG), f"base={base}", f"data={data}",
           f"out={out}", "max_steps=40", "batch_size=4", "lr=3e-2", "threads=1", "progress=false", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)


def _losses(out: Path) -> dict[int, float]:
    rows = map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def trained(setup, tmp_path_factory):
    """A complete 40-step LoRA run through the CLI (the reference curve for the resume test)."""
    base, data = setup
    ref = tmp_path_factory.mktemp("ref") / "run"
    r = _train(base, data, ref, "plot=true")
    assert r.returncode == 0, r.stderr[-2000:]
    return ref


@pytest.mark.slow
def test_lora_learns_and_resumes_after_sigkill(setup, trained, tmp_path):
    base, data = setup
    ref = trained
    ref_losses = _losses(ref)
    assert sorted(ref_losses) == list(range(1, 41))
    summary = json.loads((ref / "summary.json").read_text())
    assert summary["heldout_loss"] < summary["base_heldout_loss"] - 0.3, summary
    assert np.mean([ref_losses[s] for s in (38, 39, 40)]) < np.mean([ref_losses[s] for s in (1, 2, 3)]) - 0.15
    assert 0 < summary["trainable_parameters"] < summary["parameters"] / 5
    assert (ref / "loss.png").read_bytes()[:4] == b"\x89PNG"
    adapter_cfg = json.loads((ref / "adapter" / "adapter_config.json").read_text())
    assert sorted(adapter_cfg["target_modules"]) == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"])

    # the saved adapter reproduces the final held-out loss
    import torch

    from finetune.train import heldout_loss, load_lora_model

    model = load_lora_model(base, adapter=ref / "adapter")
    loss = heldout_loss(model, np.load(data / "heldout.npy"), 2, 10**9, "cpu", torch.autocast("cpu", enabled=False))
    assert loss == pytest.approx(summary["heldout_loss"], abs=1e-3)

    # the same run, killed with SIGKILL after a checkpoint past step 8, then resumed
    run = tmp_path / "killed"
    p = _train(base, data, run, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        m = run / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 10 and (run / "ckpt.pt").exists():
            break
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (run / "summary.json").exists()
    r = _train(base, data, run)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stdout
    resumed = _losses(run)
    assert sorted(resumed) == list(range(1, 41))
    for step in range(1, 41):
        assert resumed[step] == pytest.approx(ref_losses[step], abs=2e-3), step


def test_bad_base_corrupt_checkpoint_and_vocab_mismatch(setup, tmp_path, capsys):
    from finetune.__main__ import main

    base, data = setup

    def train(b, out):
        code = main(["train", "--config", str(DEBUG), f"base={b}", f"data={data}", f"out={out}", "progress=false"])
        return code, capsys.readouterr().err

    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 400}))
    with pytest.raises(TrainError, match="is a 'gpt2' model, not Starcoder2"):
        check_base(gpt2)
    code, err = train(gpt2, tmp_path / "o1")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: base checkpoint")

    out = tmp_path / "o2"
    out.mkdir()
    (out / "ckpt.pt").write_bytes(b"PK\x03\x04 truncated")
    code, err = train(base, out)
    assert code == 2 and "cannot be read" in err and "Traceback" not in err
    assert (out / "ckpt.pt").read_bytes() == b"PK\x03\x04 truncated"  # nothing lost

    other = tmp_path / "other"
    other.mkdir()
    cfg = json.loads((base / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "vocab_size": 999}))
    code, err = train(other, tmp_path / "o3")
    assert code == 2 and "prepare the data with --tokenizer" in err


def test_checkpoint_write_failure_keeps_last_good(tmp_path, monkeypatch):
    """A failed write (disk full) leaves the previous checkpoint loadable."""
    import torch

    from finetune import checkpoint

    path = tmp_path / "ckpt.pt"
    checkpoint.save(path, {"step": 1})

    def full_disk(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(path, {"step": 2})
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1


@pytest.mark.slow
def test_eval_compares_base_and_lora(setup, trained):
    base, data = setup
    r = subprocess.run([sys.executable, "-m", "finetune", "eval", "--model", str(base), "--model", str(trained),
                        "--data", str(data), "--per-file", "4", "--json"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    b, t = res[str(base)], res[str(trained)]
    assert b["cases"] == t["cases"] > 0
    summary = json.loads((trained / "summary.json").read_text())
    assert b["heldout_loss"] == pytest.approx(summary["base_heldout_loss"], abs=1e-3)
    assert t["heldout_loss"] == pytest.approx(summary["heldout_loss"], abs=1e-3)


@pytest.mark.slow
def test_export_merged_gguf_matches_hf_and_registers(setup, trained, tmp_path):
    from transformers import PreTrainedTokenizerFast

    from finetune.evaluate import load_heldout, next_line_cases
    from finetune.export_lora import export
    from finetune.hf_eval import HFBackend, load_model
    from sc2lsp.backends.llama_cpp import LlamaCppBackend
    from sc2lsp.core.prompt import infill_prompt
    from sc2lsp.models.registry import load_registry, resolve

    base, data = setup
    user = tmp_path / "models.toml"
    user.write_text('[models.mine]\ndescription = "x"\nlicense = "MIT"\ncontext_length = 64\ndefault_quant = "F16"\n'
                    '[models.mine.quants.F16]\npath = "mine.gguf"\n')
    res = export(trained, quant="f32", name="repo-lora", out=tmp_path / "out", adapter=True, user_toml=user)
    assert Path(res["adapter_gguf"]).is_file()
    reg = load_registry(user=user)
    assert {"mine", "repo-lora"} <= set(reg.models)  # other user entries are kept
    gguf = resolve("repo-lora", registry=reg)
    assert gguf == Path(res["gguf"]).resolve()
    # prepare's attribution index of the corpus ships next to the GGUF and the entry links it
    shipped = Path(res["attribution_index"])
    assert shipped == tmp_path / "out" / "repo-lora-attribution" and (shipped / "manifest.json").is_file()
    assert reg.models["repo-lora"].attribution_index == (shipped.resolve(),)
    export(trained, quant="f32", name="repo-lora", out=tmp_path / "out", user_toml=user)  # re-export replaces
    assert user.read_text().count("[models.repo-lora]") == 1

    model, tok_dir = load_model(trained)
    hf = HFBackend(model, PreTrainedTokenizerFast.from_pretrained(str(tok_dir)))
    cpp = LlamaCppBackend(gguf)
    for c in next_line_cases(load_heldout(data / "heldout_files.json"), per_file=3, seed=1):
        prompt = infill_prompt(c.prefix[-300:], c.suffix[:100], path=c.path)
        a, b = hf.generate(prompt, max_tokens=12), cpp.generate(prompt, max_tokens=12)
        assert hf.tokenize(prompt) == cpp.tokenize(prompt)
        assert a.text == b.text, (a.text, b.text)


def test_disk_full_while_checkpointing_is_one_message_and_keeps_the_last_checkpoint(setup, tmp_path, capsys,
                                                                                      monkeypatch):
    """The second checkpoint write of a run fails (no space): exit 2 with one line, the first checkpoint and
    the metrics up to it survive, no temporary file is left, and the same command resumes from it."""
    import torch

    from finetune import checkpoint
    from finetune.__main__ import main

    base, data = setup
    out = tmp_path / "run"
    real_save, calls = torch.save, []

    def save_then_fill_disk(obj, f, *a, **k):
        calls.append(obj["step"])
        if len(calls) >= 2:
            Path(f).write_bytes(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save_then_fill_disk)
    args = ["train", "--config", str(DEBUG), f"base={base}", f"data={data}", f"out={out}", "progress=false",
            "max_steps=6", "save_every=2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot write the checkpoint") and "step 4" in errors[0]
    assert "No space left on device" in errors[0] and "previous checkpoint is intact" in errors[0]
    assert calls == [2, 4]
    assert checkpoint.load(out / "ckpt.pt")["step"] == 2
    assert not (out / "ckpt.pt.tmp").exists()
    monkeypatch.undo()
    assert main(args) == 0
    assert "resumed from" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["step"] == 6


def test_a_finished_run_continues_with_a_longer_schedule(setup, tmp_path, capsys):
    """The same command with a larger ``max_steps`` (and another ``lr``) continues a finished run from its
    last checkpoint (docs/finetune.md, "a second schedule"): the LoRA weights and optimizer of the first run,
    its metrics kept, the new steps on the new schedule's cosine from the checkpoint's step on, and the next
    rows of the data order (the first run's epoch continues)."""
    from finetune import checkpoint
    from finetune.__main__ import main
    from finetune.loop import lr_at

    base, data = setup
    out = tmp_path / "run"
    args = ["train", "--config", str(DEBUG), f"base={base}", f"data={data}", f"out={out}", "progress=false",
            "save_every=2"]
    assert main(args + ["max_steps=6"]) == 0
    first = checkpoint.load(out / "ckpt.pt")
    assert first["step"] == 6
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    capsys.readouterr()
    assert main(args + ["max_steps=10", "lr=5e-3"]) == 0
    assert "ckpt.pt at step 6" in capsys.readouterr().out
    after = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert after[:len(rows)] == rows  # the first schedule's curve is kept as it was
    new = {r["step"]: r for r in after if "loss" in r and r["step"] > 6}
    assert sorted(new) == [7, 8, 9, 10]
    cfg = load(LoraTrainConfig, DEBUG, [f"base={base}", f"data={data}", "max_steps=10", "lr=5e-3"])
    for step, r in new.items():
        assert r["lr"] == pytest.approx(lr_at(step - 1, cfg))
    assert new[10]["tokens"] == 10 * cfg.batch_size * np.load(data / "train.npy").shape[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 10
    last = checkpoint.load(out / "ckpt.pt")
    assert any(not torch_equal(last["lora"][k], first["lora"][k]) for k in first["lora"])


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_pretrain_corrupt_checkpoint_and_non_starcoder2_init_are_one_message(setup, tmp_path, capsys):
    from finetune.__main__ import main

    base, data = setup
    pre = ROOT / "finetune" / "configs" / "debug.toml"
    out = tmp_path / "pre"
    out.mkdir()
    (out / "ckpt.pt").write_bytes(b"\x80\x04 not a checkpoint")
    assert main(["pretrain", "--config", str(pre), f"data={data}", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and "move it away" in err and "Traceback" not in err
    assert (out / "ckpt.pt").read_bytes() == b"\x80\x04 not a checkpoint"  # nothing lost
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 400}))
    assert main(["pretrain", "--config", str(pre), f"data={data}", f"out={tmp_path / 'p2'}", f"init_from={gpt2}"]) == 2
    assert "is a 'gpt2' model, not Starcoder2" in capsys.readouterr().err


@pytest.mark.slow
def test_adapter_served_on_its_base_through_llama_cpp_matches_peft(setup, trained, tmp_path, monkeypatch):
    """`export --adapter` registers NAME-lora (base entry + adapter GGUF); the engine's backend for that name
    loads both, and its greedy output equals the (unmerged) PEFT model's and differs from the base's."""
    from transformers import PreTrainedTokenizerFast

    from finetune.evaluate import load_heldout, next_line_cases
    from finetune.export_lora import export
    from finetune.hf_eval import HFBackend, load_model
    from sc2lsp.backends.llama_cpp import LlamaCppBackend
    from sc2lsp.config import Settings
    from sc2lsp.core.prompt import infill_prompt
    from sc2lsp.engine import default_backend
    from sc2lsp.models.convert import convert_checkpoint
    from sc2lsp.models.registry import load_registry, resolve_files

    base, data = setup
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    user = tmp_path / "cfg" / "sc2lsp" / "models.toml"
    user.parent.mkdir(parents=True)
    base_gguf = convert_checkpoint(base, tmp_path / "debug-f32.gguf", "f32")
    user.write_text(f'[models.debug-base]\ndescription = "debug base"\nlicense = "MIT"\ncontext_length = 1024\n'
                    f'default_quant = "F32"\nhf_checkpoint = "{base}"\n'
                    f'[models.debug-base.quants.F32]\npath = "{base_gguf}"\n')
    res = export(trained, quant="f32", name="tuned", out=tmp_path / "out", adapter=True)
    assert res["registered"] == ["tuned", "tuned-lora"] and res["registered_in"] == str(user)
    entry = load_registry().models["tuned-lora"]
    assert entry.base == "debug-base" and entry.lora == Path(res["adapter_gguf"]).resolve()
    files = resolve_files("tuned-lora")
    assert files.path == Path(base_gguf) and files.lora_path == Path(res["adapter_gguf"]).resolve()

    served = default_backend(Settings(model="tuned-lora", context_length=1024, threads=1))
    assert served.settings.lora_path == str(files.lora_path) and served.name.endswith("+tuned-lora.gguf")
    plain = LlamaCppBackend(base_gguf)
    model, tok_dir = load_model(trained)  # PEFT model, LoRA layers not merged
    peft = HFBackend(model, PreTrainedTokenizerFast.from_pretrained(str(tok_dir)))
    differs = 0
    for c in next_line_cases(load_heldout(data / "heldout_files.json"), per_file=3, seed=2):
        prompt = infill_prompt(c.prefix[-300:], c.suffix[:100], path=c.path)
        a, b, p = peft.generate(prompt, max_tokens=12), served.generate(prompt, max_tokens=12), plain.generate(
            prompt, max_tokens=12)
        assert a.text == b.text, (a.text, b.text)
        differs += p.text != b.text
    assert differs > 0, "the adapter changed no output: it was not applied"

    # re-exporting replaces the entries; a base no entry names is converted and registered as NAME-base
    user.write_text("")
    res = export(trained, quant="f32", name="tuned", out=tmp_path / "out", adapter=True)
    assert res["registered"] == ["tuned", "tuned-base", "tuned-lora"] and Path(res["base_gguf"]).is_file()
    assert load_registry().models["tuned-lora"].base == "tuned-base"
    assert user.read_text().count("[models.tuned-lora]") == 1
