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
LINE = 11  # the empty line in area()
TYPED = "        return math."
FILE = "shapes.py"

# An indexed corpus (MIT) that holds a copy of the fixture's perimeter() and __init__.
CORPUS_LICENSE = """MIT License

Copyright (c) 2024 Geomlib authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction.
"""
CORPUS_FILE = """import math


class Ring:
    def __init__(self, radius: float) -> None:
        self.radius = radius

    def perimeter(self) -> float:
        return 2 * math.pi * self.radius
"""

pytestmark = pytest.mark.slow


def _need(condition: bool, message: str) -> None:
    if not condition:
        pytest.fail(message, pytrace=False)


@pytest.fixture(scope="module")
def tools() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the VS Code extension cannot be built or run")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:  # a missing system package is a skip, never a failure (`make test` installs it as root)
        pytest.skip("chromium is not installed: apt-get install chromium ripgrep libkrb5-dev (make test does it as root)")
    if not (TOOLS / "node_modules/.bin/code-server").exists():
        if shutil.which("rg") is None:
            pytest.skip("ripgrep is not installed (code-server needs it): apt-get install ripgrep")
        r = subprocess.run(["bash", str(ROOT / "editors/vscode/scripts/install-test-tools.sh")], capture_output=True, text=True)
        _need(r.returncode == 0, f"installing code-server/playwright-core failed (run `make vscode-test-tools`):\n{r.stderr[-2000:]}")
    r = subprocess.run(["make", "-s", "vsix"], cwd=ROOT, capture_output=True, text=True)
    _need(r.returncode == 0 and VSIX.exists(), f"`make vsix` failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return {"node": node, "chromium": chromium, "code_server": str(TOOLS / "node_modules/.bin/code-server")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(log_file: Path, index: Path | None = None) -> dict:
    return {
        **({"sc2lsp.attributionIndex": [str(index)]} if index else {}),
        # the extension: the real server from this checkout's Python, its log kept for the artifacts
        "sc2lsp.pythonPath": sys.executable,
        "sc2lsp.serverArgs": ["--log-file", str(log_file), "--log-level", "DEBUG"],
        "sc2lsp.model": MODEL,
        "sc2lsp.threads": 1,  # same as the reference below; one thread also copes best with a busy CPU
        "sc2lsp.statusPollMs": 500,
        "sc2lsp.trace.server": "messages",
        # the same request `sc2lsp complete` makes: no repository context, no time caps that a busy CPU could hit
        "sc2lsp.repoContext": False,
        "sc2lsp.maxPromptMs": 600000,
        "sc2lsp.maxPredictMs": 600000,
        "sc2lsp.warmDelayMs": 250,  # not in the first list of settings the extension sent: reaches the server now
        # a quiet editor: nothing but the inline suggestion reacts to typing
        "editor.inlineSuggest.enabled": True,
        "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
        "editor.suggestOnTriggerCharacters": False,
        "editor.autoClosingBrackets": "never",
        "editor.autoClosingQuotes": "never",
        "editor.hover.enabled": False,  # no mouse hovers (the keyboard's Show Hover still works)
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
         "--model", MODEL, "--threads", "1", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return typed, json.loads(r.stdout)["suggestion"]


class VSCode:
    """code-server with the built .vsix installed into a fresh user-data dir, in its own HOME."""

    def __init__(self, tools: dict, tmp_path: Path, settings: dict, name: str, env: dict | None = None):
        self.tools, self.tmp = tools, tmp_path
        self.project = tmp_path / "project"
        self.project.mkdir()
        (self.project / FILE).write_text(SOURCE)
        home = tmp_path / "home"
        self.user = home / "user-data"
        (self.user / "User").mkdir(parents=True)
        (self.user / "User/settings.json").write_text(json.dumps(settings, indent=1))
        self.env = dict({k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "SC2LSP_"))},
                        HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                        XDG_DATA_HOME=str(home / ".local/share"))
        self.env.update(env or {})
        self.common = ["--user-data-dir", str(self.user), "--extensions-dir", str(home / "extensions")]
        self.name = name
        self.proc: subprocess.Popen | None = None

    def install(self) -> float:
        t0 = time.perf_counter()
        r = subprocess.run([self.tools["code_server"], *self.common, "--install-extension", str(VSIX)],
                           env=self.env, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0 and "sc2lsp" in r.stdout, r.stdout + r.stderr
        return time.perf_counter() - t0

    def __enter__(self) -> "VSCode":
        port = _free_port()
        self.log = open(ARTIFACTS / f"{self.name}-code-server.log", "w")
        self.proc = subprocess.Popen(
            [self.tools["code_server"], *self.common, "--bind-addr", f"127.0.0.1:{port}", "--auth", "none",
             "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
             "--disable-getting-started-override", str(self.project)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2).read()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise AssertionError("code-server did not start: " + (ARTIFACTS / f"{self.name}-code-server.log").read_text()[-3000:])
                time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        for log in self.user.glob("logs/*/exthost*/sc2lsp.sc2lsp/sc2lsp.log"):  # the extension's output channel
            shutil.copy(log, ARTIFACTS / f"{self.name}-extension.log")
        for log in self.user.glob("logs/*/exthost*/output_logging_*/*sc2lsp (LSP trace).log"):
            shutil.copy(log, ARTIFACTS / f"{self.name}-lsp-trace.log")
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # code-server, its extension host and the sc2lsp server
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc = None
        self.log.close()

    def drive(self, **config) -> tuple[dict, float]:
        """Run vscode_driver.cjs against this code-server; (its result, seconds)."""
        config = {"tools": str(TOOLS), "chromium": self.tools["chromium"], "url": self.url, "folder": str(self.project),
                  "file": FILE, "model": MODEL, "timeoutMs": 180_000, **config}
        cfg_file = self.tmp / f"{self.name}-driver.json"
        cfg_file.write_text(json.dumps(config))
        t0 = time.perf_counter()
        d = subprocess.run([self.tools["node"], str(DRIVER), str(cfg_file)], capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - t0
        lines = d.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
        (ARTIFACTS / f"{self.name}-driver.json").write_text(json.dumps(result, indent=1))
        assert d.returncode == 0, f"driver failed: {result.get('error')}\n{d.stderr[-3000:]}"
        return result, seconds


def _index(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus/geomlib"
    corpus.mkdir(parents=True)
    (corpus / "LICENSE").write_text(CORPUS_LICENSE)
    (corpus / "circles.py").write_text(CORPUS_FILE)
    out = tmp_path / "attribution-index"
    r = subprocess.run([sys.executable, "-m", "sc2lsp", "attribution", "build", str(corpus), "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return out


def test_ghost_text_is_the_servers_suggestion_and_tab_inserts_it(tools, tmp_path):
    """Type, see the server's suggestion as ghost text, accept it with Tab; then check attribution
    of the accepted suggestion (nothing selected) and of the whole file (spans, sources, hover)."""
    typed, suggestion = _expected(tmp_path)
    assert suggestion.strip(), "the model gave no suggestion at the fixture position; pick another one"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server_log = ARTIFACTS / "server.log"
    server_log.unlink(missing_ok=True)
    vs = VSCode(tools, tmp_path, _settings(server_log, _index(tmp_path)), "ghost")
    install_s = vs.install()
    with vs:
        result, drive_s = vs.drive(line=LINE, col=len(TYPED) + 1, text=TYPED, mode="complete",
                                   screenshot=str(ARTIFACTS / "vscode-ghost-text.png"), attribution=True,
                                   attributionScreenshot=str(ARTIFACTS / "vscode-attribution.png"),
                                   hoverScreenshot=str(ARTIFACTS / "vscode-attribution-hover.png"))

    print(f"\nvscode: install {install_s:.1f}s, drive {drive_s:.1f}s, steps {result['steps']}")
    # the ghost text is the server's suggestion (first line shown inline, the rest below)
    shown = "\n".join(result["ghostLines"]).replace("\u00a0", " ")
    first = suggestion.split("\n")[0]
    assert shown.split("\n")[0].rstrip() == first.rstrip(), (shown, suggestion)
    for extra in suggestion.split("\n")[1:]:
        assert extra.strip() in shown, (shown, suggestion)
    # the status bar shows the model and a latency
    assert MODEL in result["status"] and " ms" in result["status"], result["status"]
    # every setting declared in package.json reaches the server, not only a hand-kept list
    assert "'warmDelayMs': 250" in server_log.read_text(), "sc2lsp.warmDelayMs did not reach the server"
    # Tab inserted exactly the suggestion at the cursor
    prefix, suffix = typed.split("\n")[:LINE], typed.split("\n")[LINE:]
    expected = "\n".join(prefix) + suggestion + "\n" + "\n".join(suffix)
    assert (vs.project / FILE).read_text() == expected

    # Check attribution with nothing selected: the server knows the accepted suggestion (the inline
    # item's command ran), which is too short to be a copy
    assert f"last accepted suggestion ({len(suggestion)} characters)" in result["attributionLast"], result["attributionLast"]
    # Check attribution of the whole file: the copied spans, with repository, path and license
    att = result["attribution"]
    assert "span(s) of the selection found" in att["title"], att
    rows = "\n".join(att["rows"])
    assert "geomlib" in rows and "circles.py" in rows and "MIT" in rows, rows
    assert att["decorated"] > 0, att
    assert "circles.py" in att["hover"] and "MIT" in att["hover"], att["hover"]


def test_missing_server_command_says_how_to_fix_it(tools, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    settings = dict(_settings(tmp_path / "unused.log"), **{"sc2lsp.pythonPath": "", "sc2lsp.serverCommand": "sc2lsp-not-installed"})
    vs = VSCode(tools, tmp_path, settings, "missing")
    vs.install()
    with vs:
        result, _ = vs.drive(mode="missing-server", screenshot=str(ARTIFACTS / "vscode-missing-server.png"))
    assert "no server" in result["status"]
    message = next(t for t in result["toasts"] if "cannot start" in t)
    assert "'sc2lsp-not-installed' was not found on PATH" in message and "sc2lsp.serverCommand" in message, message


def test_missing_model_pull_model_with_progress(tools, tmp_path):
    """The model is not there: the server's message has a "Pull model" button; it downloads the model
    from a hub on 127.0.0.1 with a progress notification, loads it, and the status bar shows it."""
    sys.path.insert(0, str(ROOT / "tests" / "models"))
    from test_pull import REPO, Hub

    gguf = ROOT / "models/sc2-tiny/sc2-tiny-q8_0.gguf"
    name, file = "test-tiny", "sc2-tiny-q8_0.gguf"
    config = tmp_path / "home/.config/sc2lsp"
    config.mkdir(parents=True)
    (config / "models.toml").write_text(
        f'[models.{name}]\ndescription = "the embedded model, served by a test hub"\nlicense = "PSF-2.0"\n'
        f'context_length = 2048\nrepo = "{REPO}"\ndefault_quant = "Q8_0"\n'
        f'[models.{name}.quants.Q8_0]\nfile = "{file}"\nsize = {gguf.stat().st_size}\n')
    hub = Hub()
    hub.files[(REPO, file)] = gguf.read_bytes()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    vs = VSCode(tools, tmp_path, dict(_settings(ARTIFACTS / "pull-server.log"), **{"sc2lsp.model": name}), "pull", env)
    vs.install()
    try:
        with vs:
            result, seconds = vs.drive(mode="pull-model", model=name, screenshot=str(ARTIFACTS / "vscode-pull-model.png"))
    finally:
        hub.close()
    print(f"\nvscode pull: {seconds:.1f}s, steps {result['steps']}")
    assert f"sc2lsp models pull {name}" in result["missingModel"], result["missingModel"]
    assert result["pullInput"] == name
    assert f"sc2lsp: pulling {name}" in result["progress"], result["progress"]
    assert name in result["ready"] and str(tmp_path / "hf") in result["ready"], result["ready"]
    assert name in result["status"] and "no model" not in result["status"], result["status"]
    assert len(hub.gets()) >= 1
