"""``workspace/executeCommand sc2lsp.pullModel`` over stdio against a hub on 127.0.0.1: the missing
model's message names the fix, the download reports ``$/progress`` (begin, percentages, end) on a
server-created token, and the pulled model (the real embedded GGUF) loads and completes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from e2e_helpers import GEOMETRY, MODEL, OPTIONS, SERVER
from sc2lsp.lsp.rawclient import StdioClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from test_pull import REPO, Hub, write_gguf  # noqa: E402  (the hub of the pull tests)

pytestmark = pytest.mark.slow

FILE = "sc2-tiny-q8_0.gguf"


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


def _env(tmp: Path, hub: Hub, size: int | None = None) -> dict:
    config = tmp / "config"
    (config / "sc2lsp").mkdir(parents=True)
    (config / "sc2lsp" / "models.toml").write_text(
        '[models.test-tiny]\ndescription = "the embedded model, served by a test hub"\nlicense = "PSF-2.0"\n'
        f'context_length = 2048\nrepo = "{REPO}"\ndefault_quant = "Q8_0"\n'
        f'[models.test-tiny.quants.Q8_0]\nfile = "{FILE}"\nsize = {size or Path(MODEL).stat().st_size}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "SC2LSP_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp / "hf"), XDG_CONFIG_HOME=str(config), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    return env


def _initialize(c: StdioClient, root: Path, options: dict) -> None:
    params = {
        "processId": os.getpid(), "rootUri": root.as_uri(),
        "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
        "capabilities": {"textDocument": {"inlineCompletion": {}}, "window": {"workDoneProgress": True},
                         "general": {"positionEncodings": ["utf-16"]}, "workspace": {"workspaceFolders": True}},
        "initializationOptions": options,
    }
    c.request("initialize", params)
    c.notify("initialized", {})


def test_pull_model_reports_progress_and_loads(hub, tmp_path, model_path):
    hub.files[(REPO, FILE)] = Path(MODEL).read_bytes()
    env = _env(tmp_path, hub)
    c = StdioClient(SERVER, cwd=tmp_path, env=env)
    try:
        _initialize(c, tmp_path, dict(OPTIONS, model="test-tiny", repoContext=False))
        st = c.wait_ready()
        assert st["state"] == "failed"
        [msg] = [m["message"] for m in c.messages() if "test-tiny" in m["message"]]
        assert "run `sc2lsp models pull test-tiny`" in msg and "(VS Code: 'sc2lsp: Pull model')" in msg

        res = c.request("workspace/executeCommand", {"command": "sc2lsp.pullModel", "arguments": ["test-tiny"]},
                        timeout=300)
        assert res["model"] == "test-tiny"
        path = Path(res["path"])
        assert path.is_file() and str(tmp_path / "hf") in str(path)
        assert path.read_bytes() == Path(MODEL).read_bytes()

        progress = [n["params"] for n in c.notifications if n["method"] == "$/progress"]
        kinds = [p["value"]["kind"] for p in progress]
        assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds, kinds
        assert len({p["token"] for p in progress}) == 1
        pcts = [p["value"].get("percentage") for p in progress if p["value"]["kind"] == "report"]
        pcts = [p for p in pcts if p is not None]
        # huggingface_hub writes in 10 MB chunks, more than this whole file: 0 %, then 100 %
        assert pcts == sorted(pcts) and pcts[0] == 0 and pcts[-1] == 100, pcts
        assert "loaded" in progress[-1]["value"].get("message", "")

        st = c.status()
        assert st["state"] == "ready" and Path(st["model_path"]).resolve() == path.resolve()
        c.open(GEOMETRY.as_uri(), GEOMETRY.read_text())
        assert c.inline(GEOMETRY.as_uri(), 13, 15, timeout=120)

        # a second pull finds it present: no download, same answer
        gets = len(hub.gets())
        again = c.request("workspace/executeCommand", {"command": "sc2lsp.pullModel", "arguments": ["test-tiny"]},
                          timeout=120)
        assert again == res and len(hub.gets()) == gets
    finally:
        assert c.close() == 0


def test_pull_of_a_model_that_does_not_load_reports_progress_then_one_error(hub, tmp_path, model_path):
    """A 24 MB GGUF (valid header, no usable model): three 10 MB chunks of progress, then an error
    response saying it did not load; the server keeps serving."""
    data = write_gguf(tmp_path / "fake.gguf", n_floats=6 * 1024 * 1024).read_bytes()
    hub.files[(REPO, FILE)] = data
    c = StdioClient(SERVER, cwd=tmp_path, env=_env(tmp_path, hub, size=len(data)))
    try:
        _initialize(c, tmp_path, dict(OPTIONS, repoContext=False))  # the embedded model, loaded
        assert c.wait_ready()["state"] == "ready"
        msg_id = c.send_request("workspace/executeCommand", {"command": "sc2lsp.pullModel",
                                                             "arguments": ["test-tiny"]})
        err = c.response(msg_id, timeout=300)["error"]
        assert err["code"] == -32803 and "did not load" in err["message"] and "test-tiny" in err["message"]
        progress = [n["params"]["value"] for n in c.notifications if n["method"] == "$/progress"]
        pcts = [v["percentage"] for v in progress if v["kind"] == "report" and v.get("percentage") is not None]
        assert [p for p in pcts if 0 < p < 100], pcts  # 10 MB chunks of a 24 MB file: 41 %, 83 %
        assert progress[-1]["kind"] == "end" and "did not load" in progress[-1]["message"]
        assert c.status()["state"] == "failed"
        assert c.request("workspace/executeCommand", {"command": "sc2lsp.pullModel", "arguments": ["sc2-tiny"]},
                         timeout=120)["model"] == "sc2-tiny"  # back to the embedded model
        c.open(GEOMETRY.as_uri(), GEOMETRY.read_text())
        assert c.inline(GEOMETRY.as_uri(), 13, 15, timeout=120)
    finally:
        assert c.close() == 0
