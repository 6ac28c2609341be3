"""`sc2lsp models pull NAME --checkpoint` against a local hub on 127.0.0.1 serving sc2-tiny's real
safetensors checkpoint under a StarCoder2-like repository name (`snapshot_download`'s API calls,
resolve with ETag/X-Repo-Commit, Range resumes); then `hf_checkpoint` resolves to the HF cache.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_pull import CHUNK, COMMIT, ROOT, Env, Hub, assert_one_line_error  # noqa: E402

TINY_HF = ROOT / "models" / "sc2-tiny" / "hf"
CKPT_REPO = "bigcode-test/starcoder2-tiny"

pytestmark = pytest.mark.skipif(not (TINY_HF / "model.safetensors").is_file(), reason="models/sc2-tiny/hf not built")


def serve_checkpoint(hub: Hub) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in TINY_HF.iterdir() if p.is_file()}
    files["README.md"] = b"# not a checkpoint file: never fetched\n"
    for name, data in files.items():
        hub.files[(CKPT_REPO, name)] = data
    return files


def register(env: Env, name: str = "sc2-hub") -> None:
    """A StarCoder2-like entry: the GGUF is the embedded one, the checkpoint comes from the hub."""
    gguf = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
    (env.config / "sc2lsp" / "models.toml").write_text(
        f'[models.{name}]\ndescription = "sc2-tiny from a hub"\nlicense = "PSF-2.0"\ncontext_length = 2048\n'
        f'default_quant = "Q8_0"\nhf_repo = "{CKPT_REPO}"\n[models.{name}.quants.Q8_0]\npath = "{gguf}"\n')


def resolved_checkpoint(env: Env, name: str = "sc2-hub") -> subprocess.CompletedProcess:
    code = ("import sys; from sc2lsp.models.registry import hf_checkpoint; from sc2lsp.errors import UserError\n"
            f"try: print(hf_checkpoint({name!r}))\nexcept UserError as e: print('error:', e); sys.exit(2)")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env.env(), capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


@pytest.fixture
def env(tmp_path, hub) -> Env:
    return Env(tmp_path, hub.url)


def snapshot_dir(env: Env) -> Path:
    return env.hf_home / "hub" / ("models--" + CKPT_REPO.replace("/", "--")) / "snapshots" / COMMIT


def test_checkpoint_pull_lands_in_the_hf_cache_and_resolves(hub, env):
    files = serve_checkpoint(hub)
    register(env)
    r = resolved_checkpoint(env)
    assert r.returncode == 2 and "sc2lsp models pull sc2-hub --checkpoint" in r.stdout, r.stdout

    r = env.cli("models", "pull", "sc2-hub", "--checkpoint")
    assert r.returncode == 0, r.stderr
    snap = snapshot_dir(env)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json"):
        assert (snap / name).read_bytes() == files[name], name
    assert not (snap / "README.md").exists()  # outside the allow-patterns
    assert str(snap) in r.stdout
    r = resolved_checkpoint(env)
    assert r.returncode == 0 and Path(r.stdout.strip()) == snap, (r.stdout, r.stderr)
    listed = {m["name"]: m for m in json.loads(env.cli("models", "list", "--json").stdout)["models"]}
    assert listed["sc2-hub"]["checkpoint_present"] is True and listed["sc2-hub"]["hf_repo"] == CKPT_REPO
    table = [ln.split() for ln in env.cli("models", "list").stdout.splitlines()]
    assert ["sc2-hub", "checkpoint", "-", "present", CKPT_REPO] in table

    n = len(hub.requests)
    again = env.cli("models", "pull", "sc2-hub", "--checkpoint")
    assert again.returncode == 0 and "already present" in again.stdout
    assert len(hub.requests) == n  # answered from the cache


@pytest.mark.slow
def test_interrupted_checkpoint_pull_resumes(hub, env):
    files = serve_checkpoint(hub)
    register(env)
    hub.hang_after = 12 * 1024 * 1024  # stall in the middle of the 25 MB model.safetensors
    p = env.popen("models", "pull", "sc2-hub", "--checkpoint")
    blobs = env.hf_home / "hub" / ("models--" + CKPT_REPO.replace("/", "--")) / "blobs"
    partial, deadline = None, time.time() + 90
    while time.time() < deadline and partial is None:
        for f in blobs.glob("*.sc2lsp-partial") if blobs.exists() else []:
            if f.stat().st_size >= CHUNK:
                partial = f
        time.sleep(0.05)
    assert partial is not None, "the download never wrote its first chunk"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "sc2lsp models pull sc2-hub --checkpoint` again to resume" in err and "Traceback" not in err
    assert resolved_checkpoint(env).returncode == 2  # nothing usable yet

    hub.hang_after = None
    hub.release.set()
    r = env.cli("models", "pull", "sc2-hub", "--checkpoint")
    assert r.returncode == 0, r.stderr
    assert f"resuming model.safetensors at {CHUNK} of {len(files['model.safetensors'])} bytes" in r.stdout
    assert f"bytes={CHUNK}-" in hub.gets()
    assert (snapshot_dir(env) / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert not partial.exists()


def test_corrupt_checkpoint_file_is_deleted_and_an_error(hub, env):
    serve_checkpoint(hub)
    register(env)
    hub.corrupt = True  # bytes differ from the LFS sha256
    r = env.cli("models", "pull", "sc2-hub", "--checkpoint")
    assert_one_line_error(r, "sha256 mismatch", "download was deleted", "--checkpoint")
    assert resolved_checkpoint(env).returncode == 2


def test_entry_without_hf_repo_and_local_checkpoint(hub, env):
    register(env)
    r = env.cli("models", "pull", "sc2-tiny", "--checkpoint")  # the embedded model: a local directory
    assert r.returncode == 0 and "nothing to download" in r.stdout, r.stderr
    (env.config / "sc2lsp" / "models.toml").write_text(
        '[models.nockpt]\ndescription = "d"\nlicense = "MIT"\ncontext_length = 64\ndefault_quant = "Q8_0"\n'
        f'[models.nockpt.quants.Q8_0]\npath = "{ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"}"\n')
    assert_one_line_error(env.cli("models", "pull", "nockpt", "--checkpoint"), "no hf_repo")
    register(env)
    assert_one_line_error(env.cli("models", "pull", "sc2-hub", "--checkpoint"), "not found|404")
