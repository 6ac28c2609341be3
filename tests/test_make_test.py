"""`make test` on a fresh machine: without ripgrep, chromium or tmux (and without node or apt-get),
the install step reports what is missing and never fails, and the editor tests that need those
tools skip with one line naming what to install. Simulated with a PATH that holds only the
basic tools (the same lookups ``command -v`` and ``shutil.which`` make)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASIC = ["bash", "env", "id", "dirname", "cat", "make", "uname", "sed", "grep", "ls", "mkdir", "rm", "tr", "head"]


def _bare_path(tmp_path: Path, extra: tuple[str, ...] = ()) -> str:
    """A bin folder with only BASIC (+ extra) commands: no rg, chromium, tmux, apt-get, dpkg."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in BASIC + list(extra):
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    for name in ("rg", "chromium", "chromium-browser", "tmux", "apt-get", "dpkg"):
        assert not (bin_dir / name).exists()
    return str(bin_dir)


def test_install_step_never_fails_without_system_packages(tmp_path):
    env = {**os.environ, "PATH": _bare_path(tmp_path)}
    r = subprocess.run(["bash", str(ROOT / "editors/test-deps.sh")], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "not installed: chromium ripgrep tmux -> the tests that need them skip" in r.stderr
    assert "node/npm not found" in r.stderr
    r = subprocess.run(["make", "-s", "test-deps"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "apt-get install chromium ripgrep tmux" in r.stderr


@pytest.mark.slow
def test_editor_tests_skip_naming_what_to_install(tmp_path):
    extra = ("node", "npm") if shutil.which("node") else ()
    env = {**os.environ, "PATH": _bare_path(tmp_path, extra) + os.pathsep + str(Path(sys.executable).parent)}
    env.pop("PYTEST_ADDOPTS", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        "tests/editors/test_nvim_screenshot.py", "tests/editors/test_vscode.py"],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "failed" not in r.stdout.splitlines()[-1]
    assert "tmux is not installed: apt-get install tmux" in r.stdout
    if extra:
        assert "chromium is not installed: apt-get install chromium" in r.stdout
    else:
        assert "node is not installed" in r.stdout
