"""``sc2lsp index`` and ``sc2lsp context`` on a real folder."""

from __future__ import annotations

import json

from sc2lsp.cli import main

CONFIG = 'def load_config(path: str) -> dict:\n    """Read a config file."""\n    return {}\n'
MAIN = "from .config import load_config\n\n\ndef run():\n    cfg = load_config('x')\n    return cfg\n"


def repo(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "config.py").write_text(CONFIG)
    (tmp_path / "pkg" / "main.py").write_text(MAIN)
    (tmp_path / "pkg" / "lib.go").write_text("package pkg\n\nfunc Lib() {}\n")
    (tmp_path / ".env").write_text("KEY=1\n")
    return tmp_path


def test_index_json(tmp_path, capsys):
    assert main(["index", str(repo(tmp_path)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"] == 3 and out["definitions"] == 3
    assert out["languages"] == {"python": 2, "go": 1}
    assert out["skipped"].get("secret-bearing file") == 1 and out["seconds"] >= 0


def test_index_text(tmp_path, capsys):
    assert main(["index", str(repo(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "3 files, 3 symbols" in out and "python 2, go 1" in out


def test_context_shows_the_definition_and_its_provider(tmp_path, capsys, monkeypatch):
    root = repo(tmp_path)
    monkeypatch.chdir(root / "pkg")  # the workspace root is found through .git
    assert main(["context", "main.py", "--line", "6", "--col", "5", "--json", "--approx"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["file"] == "pkg/main.py" and out["root"] == str(root.resolve())
    (block,) = out["blocks"]
    assert block["provider"] == "definitions" and block["path"] == "pkg/config.py"
    assert block["code"].startswith("def load_config(path: str) -> dict:") and block["lines"] == [[1, 3]]
    assert main(["context", "main.py", "--line", "6", "--col", "5", "--approx"]) == 0
    text = capsys.readouterr().out
    assert "=== [definitions] pkg/config.py lines 1-3" in text and "<file_sep>pkg/config.py\ndef load_config" in text


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    root = repo(tmp_path)
    assert main(["index", str(root / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["context", str(root / "pkg" / "main.py"), "--line", "99", "--col", "1", "--approx"]) == 2
    assert "outside the file" in capsys.readouterr().err
    other = tmp_path.parent / f"{tmp_path.name}-elsewhere.py"
    other.write_text("x = 1\n")
    assert main(["context", str(other), "--line", "1", "--col", "1", "--root", str(root), "--approx"]) == 2
    assert "not inside the workspace" in capsys.readouterr().err
