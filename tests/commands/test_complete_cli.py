"""``sc2lsp complete`` end to end: a real file, the real embedded model, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sc2lsp.commands.complete import split_at
from sc2lsp.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo" / "geometry.py"


def sc2lsp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sc2lsp.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_split_at_is_one_based_and_checks_range():
    assert split_at("ab\ncd\n", 2, 2) == ("ab\nc", "d\n")
    assert split_at("ab\ncd", 2, 3) == ("ab\ncd", "")
    with pytest.raises(UserError, match="line 9 is outside"):
        split_at("ab\n", 9, 1)
    with pytest.raises(UserError, match="column 5 is outside line 1"):
        split_at("ab\n", 1, 5)


def test_complete_json_on_the_embedded_model():
    r = sc2lsp("complete", str(DEMO), "--line", "14", "--col", "16", "--json", "--max-tokens", "24")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"].endswith("sc2-tiny-q8_0.gguf") and out["suggestion"].strip()
    assert out["prompt_tokens"] > 50 and 0 < out["generated_tokens"] <= 24 and out["prompt_ms"] > 0


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (None, ["--line", "999", "--col", "1"], "line 999 is outside the file"),
        ("binary", ["--line", "1", "--col", "1"], "looks binary"),
        ("latin1", ["--line", "1", "--col", "1"], "not valid UTF-8"),
        (None, ["--line", "1", "--col", "1", "--model", "no-such-model"], "no-such-model"),
    ],
)
def test_complete_errors_are_one_line(tmp_path, setup, args, message):
    path = DEMO
    if setup == "binary":
        path = tmp_path / "x.py"
        path.write_bytes(b"\x00\x01\x02abc")
    elif setup == "latin1":
        path = tmp_path / "x.py"
        path.write_bytes("caf\xe9 = 1\n".encode("latin-1"))
    r = sc2lsp("complete", str(path), *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
