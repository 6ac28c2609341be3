"""Checkpoints: a real failed write (the file size limit, as a full disk does) keeps the last good
checkpoint and leaves no temporary file; loading never runs code from the file (weights_only)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from finetune import checkpoint  # noqa: E402
from finetune.loop import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402


def _state(step: int, width: int = 8) -> dict:
    model = torch.nn.Linear(width, width)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(2, width)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "tokens_seen": 123 * step,
            "torch_rng": torch.get_rng_state()}


def test_real_optimizer_state_round_trips_with_weights_only(tmp_path):
    save_checkpoint(tmp_path / "ckpt.pt", _state(3))
    back = load_checkpoint(tmp_path / "ckpt.pt")
    assert back["step"] == 3 and back["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


@pytest.mark.slow
def test_failed_write_keeps_the_last_good_checkpoint(tmp_path):
    """torch raises RuntimeError ("file write failed"), not OSError, when the disk fills up."""
    code = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r}); sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from test_checkpoint_safety import _state
        from finetune.loop import CheckpointError, save_checkpoint
        from pathlib import Path
        out = Path({str(tmp_path)!r}) / "ckpt.pt"
        save_checkpoint(out, _state(1))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
        limit = out.stat().st_size + 4096
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            save_checkpoint(out, _state(2, width=256))   # ~1 MB: cannot be written
        except CheckpointError as e:
            print("CheckpointError:", e)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "CheckpointError:" in r.stdout and "previous checkpoint is intact" in r.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 1


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.target),))


def test_load_never_runs_code_from_the_file(tmp_path):
    _Payload.target = str(tmp_path / "pwned")
    bad = tmp_path / "ckpt.pt"
    torch.save({"step": 1, "x": _Payload()}, bad)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(bad)
    assert not (tmp_path / "pwned").exists()
    assert checkpoint.load(tmp_path / "missing.pt") is None
