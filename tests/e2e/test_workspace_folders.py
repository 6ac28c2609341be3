"""Workspace folders added and removed while documents are open (VS Code's "Add Folder to
Workspace" / "Remove Folder"), over a real stdio session with sc2-tiny: a removed folder's index
and watcher are released, and its files leave the prompts at once, also where the cursor did not
move."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from e2e_helpers import OPTIONS, SERVER
from sc2lsp.lsp.rawclient import StdioClient

pytestmark = pytest.mark.slow

HELPER = "def scale_vector(v, k):\n    \"\"\"Multiply each coordinate by k.\"\"\"\n    return [x * k for x in v]\n"
MAIN = "from shapes.vectors import scale_vector\n\n\ndef grow(v):\n    return scale_vector(\n"


def project(root: Path) -> Path:
    (root / "shapes").mkdir(parents=True)
    (root / "shapes" / "vectors.py").write_text(HELPER)
    (root / "main.py").write_text(MAIN)
    return root


def folders(c: StdioClient, added: list[Path], removed: list[Path]) -> None:
    c.notify("workspace/didChangeWorkspaceFolders", {"event": {
        "added": [{"uri": p.as_uri(), "name": p.name} for p in added],
        "removed": [{"uri": p.as_uri(), "name": p.name} for p in removed]}})


def workspaces(c: StdioClient) -> dict[str, dict]:
    return {w["root"]: w for w in c.status()["server"]["workspaces"]}


def wait_for(cond, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_a_removed_folder_leaves_the_prompts_and_its_index_stops(model_path, tmp_path):
    a, b = project(tmp_path / "alpha"), project(tmp_path / "bravo")
    c = StdioClient(SERVER, cwd=tmp_path)
    try:
        c.initialize(a, dict(OPTIONS, model=model_path))
        assert c.wait_ready()["state"] == "ready"
        folders(c, [b], [])
        wait_for(lambda: len(ws := workspaces(c)) == 2 and all(w["indexed"] for w in ws.values()))
        uri = (b / "main.py").as_uri()
        c.open(uri, MAIN)
        line, col = 4, len("    return scale_vector(")
        c.inline(uri, line, col, timeout=120)
        prompt = c.request("sc2lsp/status", {"prompt": True})["last_prompt"]
        assert "<file_sep>shapes/vectors.py\n" in prompt and "<repo_name>bravo" in prompt, prompt
        busy = threads(c.proc.pid)

        for _ in range(3):  # remove and add again: nothing accumulates
            folders(c, [], [b])
            wait_for(lambda: list(workspaces(c)) == [str(a.resolve())])
            folders(c, [b], [])
            wait_for(lambda: len(ws := workspaces(c)) == 2 and all(w["indexed"] for w in ws.values()))
        wait_for(lambda: threads(c.proc.pid) <= busy + 1, 10)

        folders(c, [], [b])
        wait_for(lambda: list(workspaces(c)) == [str(a.resolve())])
        # an edit above the cursor keeps the kept suffix, and with it (before) the committed context
        c.change(uri, 2, "x = 1", (2, 0))
        before = c.status()["totals"]["model_requests"]
        c.inline(uri, line, col, timeout=120)
        assert c.status()["totals"]["model_requests"] == before + 1
        prompt = c.request("sc2lsp/status", {"prompt": True})["last_prompt"]
        assert "shapes/vectors.py" not in prompt and "bravo" not in prompt.split("<fim_prefix>")[0], prompt
        assert c.status()["last"]["context_files"] == 0
    finally:
        c.close()
