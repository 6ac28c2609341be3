"""Bad states in a real Neovim: a missing server command, a missing model, a crashing server."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from nvim_helpers import OPTIONS, SERVER, Nvim, make_project, wait_for

ERROR, WARN = 4, 3  # vim.log.levels


def test_missing_server_command_names_the_fix_and_starts_nothing(tmp_path):
    proj = make_project(tmp_path)
    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=[str(tmp_path / "no-such-venv" / "bin" / "sc2lsp"), "serve"], settings=OPTIONS) is False
        nv.cmd(f"edit {proj / 'geometry.py'}")
        time.sleep(0.5)
        assert nv.client_ids() == []
        notes = [n for n in nv.notes() if n["level"] == ERROR]
        assert len(notes) == 1, nv.notes()
        msg = notes[0]["msg"]
        assert "no-such-venv/bin/sc2lsp" in msg and "not found" in msg
        assert "cmd = {" in msg and "make install" in msg  # how to fix it


def test_checkhealth_reports_command_model_and_inline_support(tmp_path):
    with Nvim(tmp_path / "nvim") as nv:
        nv.setup(cmd=SERVER, settings=dict(OPTIONS, model=str(tmp_path / "gone.gguf")))
        nv.cmd("checkhealth sc2lsp")
        report = "\n".join(nv.api.current.buffer[:])
    assert "has vim.lsp.inline_completion" in report
    assert "server command found: " + " ".join(SERVER) in report
    assert "model file not found: " + str(tmp_path / "gone.gguf") in report


def test_checkhealth_with_a_models_toml_name(tmp_path):
    """The README's setup names the model (``sc2-tiny``): the check asks ``sc2lsp models list
    --json``, whose ``"endpoint": null`` decoded to a truthy vim.NIL and crashed the check."""
    with Nvim(tmp_path / "nvim") as nv:
        nv.setup(cmd=SERVER, settings=dict(OPTIONS, model="sc2-tiny"))
        nv.cmd("checkhealth sc2lsp")
        report = "\n".join(nv.api.current.buffer[:])
    assert "Failed to run healthcheck" not in report and "ERROR" not in report, report
    assert "model sc2-tiny present: " in report and "sc2-tiny-q8_0.gguf" in report, report
    assert "sc2lsp: running servers" in report, report


@pytest.mark.slow
def test_missing_model_is_one_clear_error_and_the_server_keeps_serving(tmp_path):
    proj = make_project(tmp_path)
    missing = tmp_path / "missing-model.gguf"
    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=SERVER, settings=dict(OPTIONS, model=str(missing)))
        nv.cmd(f"edit {proj / 'geometry.py'}")
        note = wait_for(lambda: [n for n in nv.notes() if n["level"] == ERROR], 60, "an error message")
        assert len(note) == 1, nv.notes()
        msg = note[0]["msg"]
        assert msg.startswith("sc2lsp: ") and str(missing) in msg and "checkhealth sc2lsp" in msg
        st = wait_for(lambda: (s := nv.status()) and s["state"] == "failed" and s, 30, "status 'failed'")
        assert str(missing) in st["error"]
        nv.lua("vim.api.nvim_win_set_cursor(0, {14, 0})")
        nv.input("A")
        time.sleep(1.0)  # the inline request is answered (empty), nothing shown, the server still up
        assert nv.ghost() == ""
        assert nv.status()["state"] == "failed"
        assert len(nv.client_ids()) == 1


def test_a_server_that_keeps_crashing_is_restarted_a_bounded_number_of_times(tmp_path):
    proj = make_project(tmp_path)
    crash = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=crash, settings=OPTIONS, max_restarts=2)
        nv.cmd(f"edit {proj / 'geometry.py'}")
        wait_for(lambda: any("not restarting" in m for m in nv.note_texts()), 30, "the give-up message")
        time.sleep(1.5)  # no further restart after giving up
        texts = [m for m in nv.note_texts() if m.startswith("sc2lsp: the server stopped")]
        assert [("restarting (1/2)" in m, "restarting (2/2)" in m, "not restarting" in m) for m in texts] == [
            (True, False, False), (False, True, False), (False, False, True)], texts
        assert "exit code 3" in texts[0] and ":Sc2Restart" in texts[-1]
        assert nv.client_ids() == []


@pytest.mark.slow
def test_a_killed_server_is_restarted_and_serves_again(tmp_path):
    proj = make_project(tmp_path)
    with Nvim(tmp_path / "nvim") as nv:
        assert nv.setup(cmd=SERVER, settings=OPTIONS)
        nv.cmd(f"edit {proj / 'geometry.py'}")
        nv.wait_ready()
        (old,) = nv.client_ids()
        (pid,) = nv.server_pids()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: any("restarting (1/3)" in m for m in nv.note_texts()), 30, "the restart message")
        assert any("signal 9" in m for m in nv.note_texts() if m.startswith("sc2lsp:"))
        new = wait_for(lambda: [c for c in nv.client_ids() if c != old], 60, "a new client")
        assert nv.wait_ready()["state"] == "ready"
        assert nv.server_pids() and pid not in nv.server_pids()
        assert new
