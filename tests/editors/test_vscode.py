"""The VS Code extension in a real VS Code: code-server 4.100.x driven by playwright-core and Debian's
chromium, with the built .vsix installed, the real `sc2lsp serve` and the real sc2-tiny model.

The test opens a file of a fixture project, types, waits for the ghost text, checks it against the
suggestion `sc2lsp complete --json` gives for the same document and position (same model and
settings, no repository context), accepts it with Tab, saves, and checks the file on disk. A
screenshot of the ghost text is kept under build/test-artifacts/vscode/ (SC2LSP_ARTIFACTS_DIR).

Needs node (skips without it), code-server + playwright-core (`make vscode-test-tools`, installed
by `make test`), chromium and ripgrep (`editors/vscode/scripts/install-test-tools.sh --apt` as root,
done by .ci/run) and the .vsix (`make vsix`, done by `make test`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("vscode_driver.cjs")
TOOLS = Path(os.environ.get("SC2LSP_VSCODE_TOOLS", Path.home() / ".cache/sc2lsp/vscode-test"))
VSIX = ROOT / "editors/vscode/build/sc2lsp.vsix"
ARTIFACTS = Path(os.environ.get("SC2LSP_ARTIFACTS_DIR", ROOT / "build/test-artifacts")) / "vscode"
MODEL = "sc2-tiny"

# The fixture project: the cursor goes to the end of line LINE, where TYPED is typed.
SOURCE = '''"""Shapes with an area."""

import math


class Circle:
    def __init__(self, radius: float) -> None:
        self.radius = radius

    def area(self) -> float:

    def perimeter(self) -> float:
        return 2 * math.pi * self.radius
'''
LINE = 10  # the empty line in area()
TYPED = "        return "
FILE = "shapes.py"

pytestmark = pytest.mark.slow


def _need(condition: bool, message: str) -> None:
    if not condition:
        pytest.fail(message, pytrace=False)


@pytest.fixture(scope="module")
def tools() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the VS Code extension cannot be built or run")
    if not (TOOLS / "node_modules/.bin/code-server").exists():
        r = subprocess.run(["bash", str(ROOT / "editors/vscode/scripts/install-test-tools.sh")], capture_output=True, text=True)
        _need(r.returncode == 0, f"installing code-server/playwright-core failed (run `make vscode-test-tools`):\n{r.stderr[-2000:]}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    _need(chromium is not None, "chromium is not installed: `apt-get install chromium` (or run .ci/run as root)")
    r = subprocess.run(["make", "-s", "vsix"], cwd=ROOT, capture_output=True, text=True)
    _need(r.returncode == 0 and VSIX.exists(), f"`make vsix` failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return {"node": node, "chromium": chromium, "code_server": str(TOOLS / "node_modules/.bin/code-server")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(log_file: Path) -> dict:
    return {
        # the extension: the real server from this checkout's Python, its log kept for the artifacts
        "sc2lsp.pythonPath": sys.executable,
        "sc2lsp.serverArgs": ["--log-file", str(log_file), "--log-level", "INFO"],
        "sc2lsp.model": MODEL,
        "sc2lsp.statusPollMs": 500,
        # the same request `sc2lsp complete` makes: no repository context, no time caps that a busy CPU could hit
        "sc2lsp.repoContext": False,
        "sc2lsp.maxPromptMs": 600000,
        "sc2lsp.maxPredictMs": 600000,
        # a quiet editor: nothing but the inline suggestion reacts to typing
        "editor.inlineSuggest.enabled": True,
        "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
        "editor.suggestOnTriggerCharacters": False,
        "editor.autoClosingBrackets": "never",
        "editor.autoClosingQuotes": "never",
        "editor.hover.enabled": False,
        "files.autoSave": "off",
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "workbench.enableExperiments": False,
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "extensions.autoUpdate": False,
        "extensions.ignoreRecommendations": True,
        "python.languageServer": "None",
    }


def _expected(tmp_path: Path) -> tuple[str, str]:
    """(document text after typing, the server's suggestion there) from `sc2lsp complete --json`."""
    lines = SOURCE.split("\n")
    lines[LINE - 1] = TYPED
    typed = "\n".join(lines)
    ref = tmp_path / "reference"
    ref.mkdir()
    (ref / FILE).write_text(typed)
    r = subprocess.run(
        [sys.executable, "-m", "sc2lsp", "complete", str(ref / FILE), "--line", str(LINE), "--col", str(len(TYPED) + 1),
         "--model", MODEL, "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return typed, json.loads(r.stdout)["suggestion"]


def test_ghost_text_is_the_servers_suggestion_and_tab_inserts_it(tools, tmp_path):
    typed, suggestion = _expected(tmp_path)
    assert suggestion.strip(), "the model gave no suggestion at the fixture position; pick another one"

    project = tmp_path / "project"
    project.mkdir()
    (project / FILE).write_text(SOURCE)
    home = tmp_path / "home"
    user = home / "user-data"
    (user / "User").mkdir(parents=True)
    exts = home / "extensions"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server_log = ARTIFACTS / "server.log"
    server_log.unlink(missing_ok=True)
    (user / "User/settings.json").write_text(json.dumps(_settings(server_log), indent=1))
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"))
    common = ["--user-data-dir", str(user), "--extensions-dir", str(exts)]

    t0 = time.perf_counter()
    r = subprocess.run([tools["code_server"], *common, "--install-extension", str(VSIX)], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "sc2lsp" in r.stdout, r.stdout + r.stderr
    install_s = time.perf_counter() - t0

    port = _free_port()
    cs_log = open(ARTIFACTS / "code-server.log", "w")
    proc = subprocess.Popen(
        [tools["code_server"], *common, "--bind-addr", f"127.0.0.1:{port}", "--auth", "none", "--disable-telemetry",
         "--disable-update-check", "--disable-workspace-trust", "--disable-getting-started-override", str(project)],
        env=env, stdout=cs_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, (ARTIFACTS / "code-server.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "code-server did not answer /healthz within 120 s"
                time.sleep(0.5)
        config = {
            "tools": str(TOOLS), "chromium": tools["chromium"], "url": url, "folder": str(project), "file": FILE,
            "line": LINE, "col": len(TYPED) + 1, "text": TYPED, "model": MODEL, "timeoutMs": 180_000,
            "screenshot": str(ARTIFACTS / "vscode-ghost-text.png"), "attribution": False,
            "attributionScreenshot": str(ARTIFACTS / "vscode-attribution.png"),
        }
        cfg_file = tmp_path / "driver.json"
        cfg_file.write_text(json.dumps(config))
        t1 = time.perf_counter()
        d = subprocess.run([tools["node"], str(DRIVER), str(cfg_file)], capture_output=True, text=True, timeout=600)
        drive_s = time.perf_counter() - t1
        lines = d.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
        (ARTIFACTS / "driver.json").write_text(json.dumps(result, indent=1))
        assert d.returncode == 0, f"driver failed: {result.get('error')}\n{d.stderr[-3000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # code-server, its extension host and the sc2lsp server
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        cs_log.close()

    print(f"\nvscode: install {install_s:.1f}s, drive {drive_s:.1f}s, steps {result['steps']}")
    # the ghost text is the server's suggestion (first line shown inline, the rest below)
    shown = "\n".join(p["text"] for p in result["ghostParts"]).replace("\u00a0", " ")
    first = suggestion.split("\n")[0]
    assert shown.split("\n")[0].rstrip() == first.rstrip(), (shown, suggestion)
    for extra in suggestion.split("\n")[1:]:
        assert extra.strip() in shown, (shown, suggestion)
    # the status bar shows the model and a latency
    assert MODEL in result["status"] and " ms" in result["status"], result["status"]
    # Tab inserted exactly the suggestion at the cursor
    prefix, suffix = typed.split("\n")[: LINE], typed.split("\n")[LINE:]
    expected = "\n".join(prefix) + suggestion + "\n" + "\n".join(suffix)
    assert (project / FILE).read_text() == expected
