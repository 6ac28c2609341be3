"""The file-access policy over a real stdio LSP session on the real model.

Nothing returns file text the client did not send: a file outside the workspace (or ``/etc/passwd``)
is never read for a completion, a prompt or an attribution request; a secret-bearing buffer the
editor opens (``.env``), a harmless-named symlink to it, and an ignored file are never indexed,
never context for another file, never completed and never attribution input.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e2e_helpers import OPTIONS
from sc2lsp.lsp.rawclient import LspError, StdioClient

pytestmark = pytest.mark.slow

ENV_SENTINEL = "Zq8fP2mK9xLwSENTINEL4RtY7vBn3Hs6"
OUTSIDE_SENTINEL = "OUTSIDE_SENTINEL_4711"
IGNORED_SENTINEL = "IGNORED_SENTINEL_0815"
APP = ("import os\n\n\ndef database_url():\n    return os.environ[\"DATABASE_URL\"]\n\n\n"
       "def api_key():\n    return os.environ[\"API_KEY\"]\n\n\ndef connect():\n    url = ")
ENV = f"DATABASE_URL=postgres://admin:{ENV_SENTINEL}@db/app\nAPI_KEY={ENV_SENTINEL}\n"


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / ".env").write_text(ENV)
    (root / "settings_local.py").symlink_to(".env")
    (root / ".gitignore").write_text("private/\n")
    (root / "private").mkdir()
    (root / "private" / "notes.py").write_text(f"def database_url():\n    return '{IGNORED_SENTINEL}'\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "creds.py").write_text(f"def database_url():\n    return '{OUTSIDE_SENTINEL}'\n")
    return root


@pytest.fixture
def client(project, model_path):
    c = StdioClient(cwd=project)
    c.initialize(project, dict(OPTIONS, model=model_path))
    assert c.wait_ready(120)["state"] == "ready"
    yield c
    c.close()


def _last_prompt(c: StdioClient) -> str:
    return c.request("sc2lsp/status", {"prompt": True}).get("last_prompt") or ""


def _complete_app(c: StdioClient, project: Path) -> str:
    """A completion in app.py, and the prompt the model saw."""
    uri = (project / "app.py").as_uri()
    c.open(uri, APP)
    c.inline(uri, APP.count("\n"), len(APP.rsplit("\n", 1)[-1]))
    return _last_prompt(c)


def test_file_outside_the_workspace_is_never_read(client, project):
    targets = [(project.parent / "outside" / "creds.py").as_uri(), OUTSIDE_SENTINEL]
    if Path("/etc/passwd").is_file():
        targets.append("file:///etc/passwd")
    for uri in [t for t in targets if t.startswith("file:")]:
        assert client.inline(uri, 1, 4) == []
        prompt = _last_prompt(client)
        assert OUTSIDE_SENTINEL not in prompt and "root:" not in prompt
        with pytest.raises(LspError) as e:
            client.request("sc2lsp/attribution", {"uri": uri})
        assert "does not read it" in str(e.value)
        assert OUTSIDE_SENTINEL not in str(e.value.error) and "root:x" not in str(e.value.error)


@pytest.mark.parametrize("name", [".env", "settings_local.py", "private/notes.py"])
def test_excluded_buffer_is_never_context_completion_or_attribution(client, project, name):
    uri = (project / name).as_uri()
    text = (project / name).read_text()
    client.open(uri, text)
    client.change(uri, 2, "\nSECOND=1\n", (2, 0))  # didChange too
    assert client.inline(uri, 1, 4) == []  # a request on the excluded document: empty
    sentinel = IGNORED_SENTINEL if "private" in name else ENV_SENTINEL
    assert sentinel not in _last_prompt(client)
    found = client.request("sc2lsp/attribution", {"uri": uri})
    assert found["spans"] == [] and sentinel not in str(found)
    prompt = _complete_app(client, project)  # another file's context
    assert "def connect" in prompt  # the prompt is app.py's
    assert sentinel not in prompt and ENV_SENTINEL not in prompt
    st = client.request("sc2lsp/status", {"uri": uri})
    assert st["document"]["chars"] > 0  # kept in sync, only never used


def test_allowed_workspace_file_not_open_is_read(client, project):
    """The policy is not a blanket refusal: a kept workspace file that is not open still completes."""
    uri = (project / "app.py").as_uri()
    client.inline(uri, APP.count("\n"), len(APP.rsplit("\n", 1)[-1]))
    assert "def connect():" in _last_prompt(client)


def test_a_buffer_with_no_file_is_completed_from_its_own_text(client, project):
    """VS Code's new-file buffer (``untitled:Untitled-1``) gets completions from the text the
    editor sent, like a buffer outside every folder: no context, nothing read from disk."""
    uri = "untitled:Untitled-1"
    client.open(uri, APP, "python")
    before = client.status()["totals"]["model_requests"]
    client.inline(uri, APP.count("\n"), len(APP.rsplit("\n", 1)[1]), timeout=120)
    st = client.status()
    assert st["totals"]["model_requests"] == before + 1, st["totals"]
    prompt = _last_prompt(client)
    assert prompt.endswith(APP) and "<file_sep>" + "app.py" not in prompt and ENV_SENTINEL not in prompt
