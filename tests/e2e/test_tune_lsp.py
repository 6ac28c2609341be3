"""`sc2lsp.tune` over a real stdio session: without the training extras it is one error (and one
message) naming the install command, and the server goes on serving; bad arguments are errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sc2lsp.lsp.rawclient import LspError, StdioClient

ROOT = Path(__file__).resolve().parents[2]
#: the real server, with the training extras looked up under a name that does not exist
SERVER = [sys.executable, "-c", "import sys; import sc2lsp.tuning as t; t.TRAIN_MODULES = ('torch', 'no_such_extra_x');"
          " from sc2lsp.cli import main; sys.exit(main(['serve']))"]


def test_tune_without_training_extras_names_the_install_command(tmp_path):
    ws = tmp_path / "repo"
    ws.mkdir()
    (ws / "a.py").write_text("def f():\n    return 1\n")
    client = StdioClient(SERVER, env={"PYTHONPATH": str(ROOT), "SC2LSP_STATS": "0"})
    try:
        client.initialize(ws, {"model": "sc2-tiny", "threads": 1, "warmUp": False})
        with pytest.raises(LspError) as e:
            client.request("workspace/executeCommand", {"command": "sc2lsp.tune", "arguments": []}, timeout=60)
        assert e.value.code == -32803
        msg = e.value.error["message"]
        assert "no_such_extra_x" in msg and "pip install" in msg and "[train]" in msg, msg
        shown = [m["message"] for m in client.messages()]
        assert any("pip install" in m for m in shown), shown
        with pytest.raises(LspError) as e:  # a folder that does not exist
            client.request("workspace/executeCommand", {"command": "sc2lsp.tune",
                                                        "arguments": [str(tmp_path / "nope")]}, timeout=60)
        assert "is not a folder" in e.value.error["message"]
        assert client.request("workspace/executeCommand", {"command": "sc2lsp.tuneCancel", "arguments": []}) == \
            {"cancelled": False}
        assert client.status()["state"] in ("ready", "loading")  # still serving
    finally:
        client.close()
