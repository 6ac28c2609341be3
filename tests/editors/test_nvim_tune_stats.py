"""A real Neovim session with the real server: accepted suggestions land in the local acceptance
statistics (`sc2lsp stats`), and `:Sc2Tune`'s Lua entry point fine-tunes on the workspace folder in
a child process with `$/progress`, then serves the adapter without a restart."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nvim_helpers import MODEL, OPTIONS, ROOT, SERVER, Nvim, make_project, wait_for

pytestmark = pytest.mark.slow

DEF = (11, 48)  # end of 'def distance(self, other: "Point") -> float:' (a multi-line suggestion)
FIELD = (8, 12)  # end of "    x: float" (a suggestion that goes on on this line, then more lines)


def stats_rows(stats_file) -> list[dict]:
    env = {"PYTHONPATH": str(ROOT), "SC2LSP_STATS_FILE": str(stats_file), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "sc2lsp.cli", "stats", "--json"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["rows"]


def test_accepting_suggestions_is_counted_per_model(tmp_path, monkeypatch):
    stats_file = tmp_path / "state" / "stats.jsonl"
    monkeypatch.setenv("SC2LSP_STATS_FILE", str(stats_file))  # the server's, through nvim's environment
    proj = make_project(tmp_path)
    path = proj / "geometry.py"
    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=SERVER, settings=OPTIONS) is True
        nv.cmd(f"edit {path}")
        nv.wait_ready()
        nv.api.current.window.cursor = (DEF[0] + 1, 0)
        nv.input("A")
        whole = nv.wait_ghost()
        nv.input("<Tab>")  # accept all of it
        wait_for(lambda: nv.lua("return require('sc2lsp').last_accepted ~= nil"), 10, "the accept")
        nv.input("<Esc>")
        nv.api.current.window.cursor = (FIELD[0] + 1, 0)
        nv.input("A")
        shown = nv.wait_ghost()
        first = shown.lstrip("\n").split("\n")[0]
        assert "\n" in shown.strip("\n"), shown  # a multi-line suggestion: accept-line takes a part
        nv.input("<C-l>")  # accept its first line only
        wait_for(lambda: nv.lua("return require('sc2lsp').last_accepted.text") != whole, 10, "the second accept")
        partial = nv.lua("return require('sc2lsp').last_accepted.text")
        nv.input("<Esc>")

        def counted():
            rows = [r for r in stats_rows(stats_file) if r["model"] == MODEL]
            return rows if rows and rows[0]["accepted_whole"] + rows[0]["accepted_partly"] >= 2 else None

        rows = wait_for(counted, 20, "the accepts in the statistics", interval=0.5)
    assert len(rows) == 1, rows  # one model, one day
    r = rows[0]
    assert r["shown"] >= 2 and r["accepted_whole"] == 1 and r["accepted_partly"] == 1, r
    assert partial.strip() == first.strip()
    assert r["chars_accepted"] == len(whole) + len(partial), (r, whole, partial)
    assert r["latency_p50_ms"] > 0 and r["latency_p95_ms"] >= r["latency_p50_ms"]
    assert 0 < r["acceptance_rate"] <= 1


def test_sc2tune_runs_the_pipeline_with_progress_and_serves_the_adapter(tmp_path):
    proj = make_project(tmp_path)
    for i in range(4):  # a workspace with a few held-out candidates besides geometry.py
        (proj / f"shapes{i}.py").write_text((ROOT / "examples" / "demo" / "geometry.py").read_text()
                                            .replace("Point", f"Point{i}").replace("distance", f"dist{i}"))
    tiny = ROOT / "models" / "sc2-tiny"
    options = dict(OPTIONS, model="sc2-tiny")
    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=SERVER, settings=options) is True
        nv.cmd(f"edit {proj / 'geometry.py'}")
        nv.wait_ready()
        nv.lua("require('sc2lsp').tune({ force = true, perFile = 2, name = 'geo',"
               " prepare = { 'seq_len=128', 'epochs=1', 'heldout_fraction=0.3' },"
               " train = { 'max_steps=4', 'batch_size=2', 'save_every=2', 'threads=1', 'eval_every=1000' } })")
        seen = []

        def done():
            p = nv.lua("return require('sc2lsp').tune_progress")
            if p and p.get("message") and (not seen or seen[-1] != p["message"]):
                seen.append(p["message"])
            t = nv.lua("return require('sc2lsp').last_tune")
            return t if t and not t.get("running") else None

        result = wait_for(done, 900, "the fine-tuning run", interval=0.2)
        assert "error" not in result, result
        assert result["registered"] is True and result["model"] == "geo-lora", result
        assert any(m.startswith("train: step ") and "loss" in m for m in seen), seen
        assert "held-out loss" in result["table"] and "geo-lora" in result["table"]
        st = wait_for(lambda: (s := nv.status()) and s.get("state") == "ready" and s, 120, "the adapter loaded")
        assert st["model"] == "geo-lora", st
        notes = "\n".join(nv.note_texts())
        assert "registered geo-lora" in notes and "held-out loss" in notes, notes[-2000:]
    assert (tiny / "sc2-tiny-q8_0.gguf").is_file()
