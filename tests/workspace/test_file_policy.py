"""The file-access policy (sc2lsp.workspace.policy): secret names, symlinks judged by target, ignore rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sc2lsp.workspace.policy import FilePolicy, is_secret_path, uri_path
from sc2lsp.workspace.scan import scan

SECRET = [".env", ".env.local", ".envrc", "secrets.toml", "secret.yaml", "config/secrets.json", "prod.tfstate",
          "terraform.tfstate.backup", ".kube/config", "home/.kube/cache/x.json", ".docker/config.json",
          "a/.docker/config.json", ".s3cfg", ".vault-token", "secrets/db.txt", "deploy/secrets/api.py",
          "id_rsa", "server.pem", ".netrc", "app/.ENV"]
NOT_SECRET = ["settings.py", "environment.py", "docker/config.json", ".docker/daemon.py", "kube.py",
              "src/keys.py", "tfstate.md", "config.json", "README.md", "env/main.py"]


@pytest.mark.parametrize("path", SECRET)
def test_secret_paths(path):
    assert is_secret_path(path)


@pytest.mark.parametrize("path", NOT_SECRET)
def test_not_secret_paths(path):
    assert not is_secret_path(path)


def test_scan_skips_new_secret_names(tmp_path):
    for rel in SECRET + NOT_SECRET:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x = 1\n")
    kept = {e.path for e in scan(tmp_path) if e.kept}
    assert kept == set(NOT_SECRET)


def test_symlink_judged_by_target(tmp_path):
    (tmp_path / ".env").write_text("API_KEY=abc\n")
    (tmp_path / "settings_local.py").symlink_to(".env")
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "link_ok.py").symlink_to("ok.py")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.py"
    outside.write_text("y = 2\n")
    (tmp_path / "escape.py").symlink_to(outside)
    pol = FilePolicy([tmp_path])
    v = pol.judge((tmp_path / "settings_local.py").as_uri())
    assert v.rel == ".env" and v.excluded and not v.readable
    assert pol.judge(str(tmp_path / "link_ok.py")).readable
    esc = pol.judge(str(tmp_path / "escape.py"))
    assert esc.root is None and not esc.readable and not esc.excluded
    assert {e.path for e in scan(tmp_path) if e.kept} == {"ok.py", "link_ok.py"}


def test_outside_workspace_and_ignored(tmp_path):
    (tmp_path / ".gitignore").write_text("build/\n*.log\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "gen.py").write_text("x = 1\n")
    pol = FilePolicy([tmp_path])
    assert pol.judge(str(tmp_path / "build" / "gen.py")).reason == "ignored by .gitignore"
    assert pol.judge(str(tmp_path / "x.log")).excluded
    assert pol.judge(str(tmp_path / "node_modules" / "a.js")).excluded
    etc = pol.judge("file:///etc/passwd")
    assert etc.root is None and not etc.readable
    assert not pol.judge("untitled:Untitled-1").readable
    # a buffer with no file is completed from its own text (not excluded), unless its name is a secret one
    assert not pol.judge("untitled:Untitled-1").excluded and not pol.judge("vscode-notebook-cell:/w/x.ipynb#W0").excluded
    assert pol.judge("vscode-vfs://github/o/r/config/.env").excluded
    # a buffer with no file is no path, even where a file of that name exists in the working folder
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        (tmp_path / "untitled:notes.py").write_text("x = 1\n")
        untitled = FilePolicy([tmp_path]).judge("untitled:notes.py")
        assert untitled.real is None and not untitled.readable
    finally:
        os.chdir(old)
    assert pol.judge("file:///tmp/other/.env").excluded  # a secret name is excluded anywhere


def test_uri_path_takes_only_local_files():
    assert uri_path("file:///tmp/a%20b.py") == "/tmp/a b.py"
    assert uri_path("/tmp/plain.py") == "/tmp/plain.py"
    assert uri_path("untitled:Untitled-1") is None
    assert uri_path("vscode-notebook-cell:/x.ipynb#W0") is None
    assert uri_path("file://server/share/a.py") is None


def test_watcher_judges_a_new_symlink_by_its_target(tmp_path):
    from sc2lsp.context.index import RepoIndex
    from sc2lsp.workspace.watch import WorkspaceWatcher

    (tmp_path / ".env").write_text("API_KEY=Zq8fP2mK9xLw4RtY7vBn3Hs6\n")
    (tmp_path / "ok.py").write_text("x = 1\n")
    index = RepoIndex()
    w = WorkspaceWatcher(tmp_path, index)
    (tmp_path / "settings_local.py").symlink_to(".env")
    (tmp_path / "alias.py").symlink_to("ok.py")
    for rel in ("settings_local.py", "alias.py"):
        w.notify(rel, "update")
    w.flush()
    assert "alias.py" in index.paths() and "settings_local.py" not in index.paths()
