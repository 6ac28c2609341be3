"""`sc2lsp models pull` against a real HTTP server on 127.0.0.1 speaking the hub's resolve protocol,
and `check_gguf` on real GGUF files (written with gguf's GGUFWriter).

The pull runs as a real CLI subprocess: huggingface_hub reads HF_ENDPOINT / HF_HOME at import.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import gguf
import numpy as np
import pytest

from sc2lsp.errors import UserError
from sc2lsp.models.gguf_check import check_gguf, read_gguf_header

ROOT = Path(__file__).resolve().parents[2]
REPO = "tester/tiny-gguf"
FILE = "tiny-q8_0.gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 10 * 1024 * 1024  # huggingface_hub writes the body in chunks of this size


def write_gguf(path: Path, *, arch: str = "starcoder2", n_floats: int = 16, n_vocab: int = 64,
               general_type: str | None = None) -> Path:
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(128)
    if general_type:
        w.add_type(general_type)
    w.add_token_list([f"t{i}" for i in range(n_vocab)])
    w.add_token_merges(["t 1", "t 2"])
    w.add_tensor("token_embd.weight", np.arange(n_floats, dtype=np.float32).reshape(-1, 16))
    w.add_tensor("output_norm.weight", np.ones(16, np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --------------------------------------------------------------------------- a tiny hub


class Hub:
    """Serves HEAD/GET /{repo}/resolve/{revision}/{file} like the hub (ETag = sha256 of the file), and
    the two API calls of ``snapshot_download``: ``/api/models/{repo}/revision/{rev}`` (the commit) and
    ``/api/models/{repo}/tree/{rev}`` (the file list; ``.safetensors``/``.gguf`` files as LFS files)."""

    def __init__(self):
        self.files: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.drop_after: int | None = None  # close the next GET after this many bytes of the file
        self.hang_after: int | None = None  # send this many bytes, then stall until released
        self.corrupt = False  # serve different bytes (same length) under the right ETag
        self.release = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.serve(head=True)

            def do_GET(self):
                self.serve(head=False)

            def serve(self, head: bool):
                rng = self.headers.get("Range")
                hub.requests.append((self.command, self.path, rng))
                if urlparse(self.path).path.startswith("/api/models/"):
                    return self.api()
                m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", urlparse(self.path).path)
                data = hub.files.get((m.group(1), m.group(3))) if m else None
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                if rng and not head:
                    start = int(re.fullmatch(r"bytes=(\d+)-\d*", rng).group(1))
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if head:
                    return
                body = bytes(b ^ 0xFF for b in data[:64]) + data[64:] if hub.corrupt else data
                end = len(data)
                if hub.drop_after is not None and start < hub.drop_after:
                    end, hub.drop_after = hub.drop_after, None
                stall = hub.hang_after is not None and start < hub.hang_after
                if stall:
                    end = hub.hang_after
                self.wfile.write(body[start:end])
                self.wfile.flush()
                if stall:
                    hub.release.wait(60)
                self.close_connection = True

            def api(self):
                m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree)/([^/]+)", urlparse(self.path).path)
                files = {f: d for (r, f), d in hub.files.items() if m and r == m.group(1)}
                if not files:
                    body, status = b'{"error": "Repository not found"}', 404
                elif m.group(2) == "revision":
                    body, status = json.dumps({"id": m.group(1), "sha": COMMIT,
                                               "siblings": [{"rfilename": f} for f in sorted(files)]}).encode(), 200
                else:
                    body, status = json.dumps([hub.tree_item(f, d) for f, d in sorted(files.items())]).encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def tree_item(name: str, data: bytes) -> dict:
        item = {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
        if name.endswith((".safetensors", ".gguf")):
            item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return item

    def gets(self) -> list[str | None]:
        return [rng for method, path, rng in self.requests if method == "GET" and not path.startswith("/api/")]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


@pytest.fixture(scope="module")
def small_bytes(tmp_path_factory) -> bytes:
    """A valid 50 kB GGUF."""
    return write_gguf(tmp_path_factory.mktemp("gguf") / FILE, n_floats=12 * 1024).read_bytes()


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    """A valid ~24 MB GGUF (large enough that huggingface_hub writes two 10 MB chunks before a drop)."""
    path = write_gguf(tmp_path_factory.mktemp("gguf") / FILE, n_floats=6 * 1024 * 1024)
    return path.read_bytes()


class Env:
    def __init__(self, tmp: Path, endpoint: str):
        self.tmp, self.endpoint = tmp, endpoint
        self.hf_home = tmp / "hf"
        self.config = tmp / "config"
        (self.config / "sc2lsp").mkdir(parents=True, exist_ok=True)

    def register(self, *, size: int | None = None, sha256: str | None = None, file: str = FILE) -> None:
        """Declare the test model in a user models.toml (XDG_CONFIG_HOME)."""
        lines = [
            "[models.test-tiny]", 'description = "a test model"', 'license = "MIT"', "context_length = 128",
            f'repo = "{REPO}"', 'default_quant = "Q8_0"', "[models.test-tiny.quants.Q8_0]", f'file = "{file}"',
        ]
        if size is not None:
            lines.append(f"size = {size}")
        if sha256 is not None:
            lines.append(f'sha256 = "{sha256}"')
        (self.config / "sc2lsp" / "models.toml").write_text("\n".join(lines) + "\n")

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "SC2LSP_"))}
        env.update(HF_ENDPOINT=self.endpoint, HF_HOME=str(self.hf_home), XDG_CONFIG_HOME=str(self.config),
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5",
                   NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
        return env

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "sc2lsp.cli", *args], cwd=ROOT, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sc2lsp.cli", *args], cwd=ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    @property
    def repo_cache(self) -> Path:
        return self.hf_home / "hub" / ("models--" + REPO.replace("/", "--"))

    def leftovers(self) -> list[Path]:
        return sorted(self.repo_cache.rglob("*")) if self.repo_cache.exists() else []

    def listed(self) -> dict:
        r = self.cli("models", "list", "--json")
        assert r.returncode == 0, r.stderr
        return {m["name"]: m for m in json.loads(r.stdout)["models"]}["test-tiny"]["quants"][0]


@pytest.fixture
def env(tmp_path, hub) -> Env:
    return Env(tmp_path, hub.url)


def assert_one_line_error(r: subprocess.CompletedProcess, *patterns: str) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(err) == 1, r.stderr
    for p in patterns:
        assert re.search(p, err[0]), err[0]
    return err[0]


def assert_no_usable_file(env: Env) -> None:
    snapshots = env.repo_cache / "snapshots"
    assert not snapshots.exists() or not any(p.is_file() for p in snapshots.rglob("*"))
    assert not list((env.repo_cache / "blobs").glob("*")) if (env.repo_cache / "blobs").exists() else True
    assert env.listed()["present"] is False


# --------------------------------------------------------------------------- pull


def test_pull_lands_in_the_hf_cache_and_list_shows_it(hub, env, small_bytes):
    sha = hashlib.sha256(small_bytes).hexdigest()
    hub.files[(REPO, FILE)] = small_bytes
    env.register(size=len(small_bytes), sha256=sha)
    assert env.listed()["present"] is False

    r = env.cli("models", "pull", "test-tiny")
    assert r.returncode == 0, r.stderr
    pointer = env.repo_cache / "snapshots" / COMMIT / FILE
    assert pointer.is_symlink() and pointer.resolve() == env.repo_cache / "blobs" / sha
    assert pointer.read_bytes() == small_bytes
    assert (env.repo_cache / "refs" / "main").read_text() == COMMIT
    assert not [p for p in env.leftovers() if p.name.endswith(("partial", "incomplete"))]
    assert str(pointer) in r.stdout
    assert hub.gets() == [None]  # one plain GET; HEADs for metadata and for hf_hub_download's link

    listed = env.listed()
    assert listed["present"] is True and listed["path"] == str(pointer) and listed["size"] == len(small_bytes)

    n = len(hub.requests)
    again = env.cli("models", "pull", "test-tiny")
    assert again.returncode == 0 and "already present" in again.stdout
    assert len(hub.requests) == n  # answered from the cache, no request at all


def test_pull_replaces_a_damaged_cached_copy(hub, env, tmp_path):
    data = write_gguf(tmp_path / "whole.gguf", n_floats=4096).read_bytes()
    hub.files[(REPO, FILE)] = data
    env.register()  # no size: only the GGUF check can tell the cached copy is cut
    assert env.cli("models", "pull", "test-tiny").returncode == 0
    pointer = env.repo_cache / "snapshots" / COMMIT / FILE
    os.truncate(pointer.resolve(), len(data) - 10)  # damaged on disk after the download
    r = env.cli("models", "pull", "test-tiny")
    assert r.returncode == 0, r.stderr
    assert "damaged" in r.stdout and "truncated GGUF" in r.stdout
    assert pointer.read_bytes() == data and len(hub.gets()) == 2


@pytest.mark.slow
def test_pull_resumes_when_the_server_drops_the_connection(hub, env, model_bytes):
    hub.files[(REPO, FILE)] = model_bytes
    hub.drop_after = 15 * 1024 * 1024  # after one full 10 MB chunk reached the disk
    env.register()  # no sha256 in models.toml: the hub's ETag (sha256) is checked instead
    r = env.cli("models", "pull", "test-tiny")
    assert r.returncode == 0, r.stderr
    assert hub.gets() == [None, f"bytes={CHUNK}-"]  # the second GET resumed where the disk ended
    assert (env.repo_cache / "snapshots" / COMMIT / FILE).read_bytes() == model_bytes


@pytest.mark.slow
def test_interrupted_pull_resumes_in_the_next_run(hub, env, model_bytes):
    hub.files[(REPO, FILE)] = model_bytes
    hub.hang_after = 12 * 1024 * 1024  # stall mid-file, as a dead network would
    env.register(size=len(model_bytes), sha256=hashlib.sha256(model_bytes).hexdigest())
    p = env.popen("models", "pull", "test-tiny")
    partial = None
    deadline = time.time() + 60
    while time.time() < deadline and partial is None:
        found = list(env.repo_cache.glob("blobs/*.sc2lsp-partial")) if env.repo_cache.exists() else []
        if found and found[0].stat().st_size >= CHUNK:
            partial = found[0]
        time.sleep(0.05)
    assert partial is not None, "the download never wrote its first chunk"
    p.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "run `sc2lsp models pull test-tiny` again to resume" in err and "Traceback" not in err
    assert partial.stat().st_size == CHUNK
    assert env.listed()["present"] is False  # the partial file is never where models are looked for

    hub.hang_after = None
    hub.release.set()
    r = env.cli("models", "pull", "test-tiny")
    assert r.returncode == 0, r.stderr
    assert f"resuming {FILE} at {CHUNK} of {len(model_bytes)} bytes" in r.stdout
    assert hub.gets()[-1] == f"bytes={CHUNK}-"
    assert (env.repo_cache / "snapshots" / COMMIT / FILE).read_bytes() == model_bytes
    assert not partial.exists()


def test_sha256_mismatch_is_an_error_and_leaves_no_file(hub, env, small_bytes):
    hub.files[(REPO, FILE)] = small_bytes
    hub.corrupt = True  # the bytes differ from the ETag / pinned sha256
    env.register(size=len(small_bytes), sha256=hashlib.sha256(small_bytes).hexdigest())
    r = env.cli("models", "pull", "test-tiny")
    assert_one_line_error(r, "sha256 mismatch", "download was deleted")
    assert_no_usable_file(env)


def test_pinned_sha256_that_the_hub_no_longer_serves_fails_before_downloading(hub, env, small_bytes):
    hub.files[(REPO, FILE)] = small_bytes
    env.register(sha256="0" * 64)
    r = env.cli("models", "pull", "test-tiny")
    assert_one_line_error(r, "changed upstream", "0{64}")
    assert hub.gets() == []
    assert_no_usable_file(env)


def test_exact_size_that_differs_from_the_hub_fails_before_downloading(hub, env, small_bytes):
    hub.files[(REPO, FILE)] = small_bytes
    env.register(size=len(small_bytes) + 1)
    r = env.cli("models", "pull", "test-tiny")
    assert_one_line_error(r, f"{len(small_bytes)} bytes", "changed upstream")
    assert hub.gets() == []


def test_404_is_one_clear_error(hub, env):
    env.register(file="missing.gguf")
    r = env.cli("models", "pull", "test-tiny")
    assert_one_line_error(r, "tester/tiny-gguf/missing.gguf", "not found", "404")
    assert_no_usable_file(env)


def test_server_down_is_one_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = Env(tmp_path, f"http://127.0.0.1:{port}")
    env.register()
    r = env.cli("models", "pull", "test-tiny")
    assert_one_line_error(r, "cannot reach http://127.0.0.1:", "network")


def test_truncated_upload_is_rejected_by_the_gguf_check(hub, env, tmp_path):
    data = write_gguf(tmp_path / "whole.gguf", n_floats=4096).read_bytes()
    hub.files[(REPO, FILE)] = data[:-1000]  # the hub itself serves a cut file: size and ETag agree
    env.register()
    r = env.cli("models", "pull", "test-tiny")
    assert_one_line_error(r, f"not a usable model: truncated GGUF {REPO}/{FILE}",
                          f"expected {len(data)} bytes, file has {len(data) - 1000}")
    assert_no_usable_file(env)


def test_unknown_name_and_local_model(env):
    env.register()
    r = env.cli("models", "pull", "no-such-model")
    assert_one_line_error(r, "unknown model 'no-such-model'", "starcoder2-3b", "test-tiny")
    r = env.cli("models", "pull", "test-tiny", "--quant", "Q2_K")
    assert_one_line_error(r, "no quant 'Q2_K'", "Q8_0")


def test_pull_of_the_embedded_model_downloads_nothing(env, tmp_path):
    local = write_gguf(tmp_path / "local.gguf")
    (env.config / "sc2lsp" / "models.toml").write_text(
        '[models.embedded]\ndescription = "d"\nlicense = "MIT"\ncontext_length = 64\ndefault_quant = "Q8_0"\n'
        f'[models.embedded.quants.Q8_0]\npath = "{local}"\n'
    )
    r = env.cli("models", "pull", "embedded")
    assert r.returncode == 0, r.stderr
    assert "already present" in r.stdout and str(local) in r.stdout
    tiny = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"
    r = env.cli("models", "pull", "sc2-tiny")
    if tiny.exists():
        assert r.returncode == 0 and "already present" in r.stdout, r.stderr
    else:
        assert_one_line_error(r, "local file, not a download", "missing")


# --------------------------------------------------------------------------- check_gguf


def test_check_gguf_reads_a_valid_header(tmp_path):
    path = write_gguf(tmp_path / "ok.gguf", n_floats=64)
    info = check_gguf(path)
    reader = gguf.GGUFReader(str(path))  # gguf-py's reader as the reference
    assert info.arch == "starcoder2" and info.version == 3 and info.n_tensors == 2
    assert info.data_offset == reader.data_offset
    assert info.data_end == max(t.data_offset + t.n_bytes for t in reader.tensors) == path.stat().st_size
    assert info.context_length == 128 and info.metadata["tokenizer.ggml.tokens"] == ("array", 64)


def test_check_gguf_truncated(tmp_path):
    data = write_gguf(tmp_path / "ok.gguf", n_floats=4096).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:-1])
    with pytest.raises(UserError, match=rf"truncated GGUF .*expected {len(data)} bytes, file has {len(data) - 1}"):
        check_gguf(cut)
    cut.write_bytes(data[:300])  # inside the key/value section
    with pytest.raises(UserError, match=r"truncated GGUF .*header needs at least \d+ bytes, file has 300"):
        check_gguf(cut)


def test_check_gguf_on_a_big_sparse_file(tmp_path):
    """A 3 GB file is checked from its header alone (it is sparse: nothing but the header is on disk)."""
    path = tmp_path / "big.gguf"
    w = gguf.GGUFWriter(str(path), "starcoder2")
    w.add_token_list([f"t{i}" for i in range(1000)])
    for i in range(30):  # 30 Q8_0 tensors of 100 MB
        w.add_tensor_info(f"blk.{i}.w", [3125, 32000 // 32 * 34], np.dtype(np.uint8), 3125 * 1000 * 34,
                          raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    end = read_gguf_header(path).data_end
    assert end > 3_000_000_000
    os.truncate(path, end)
    assert check_gguf(path).data_end == end
    os.truncate(path, end - 1)
    with pytest.raises(UserError, match=f"expected {end} bytes, file has {end - 1}"):
        check_gguf(path)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"<!DOCTYPE html><html>rate limited</html>", "HTML"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "Git LFS pointer"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}xxxxxx", "safetensors"),
    (b"GGUF\x01\x00\x00\x00" + bytes(40), "GGUF version 1"),
    (b"GGUF\x00\x00\x00\x03" + bytes(40), "big-endian"),
    (b"not a gguf at all" * 10, "not a GGUF file"),
])
def test_check_gguf_names_what_the_file_is(tmp_path, content, message):
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        check_gguf(path)


def test_check_gguf_architecture_and_kind(tmp_path):
    with pytest.raises(UserError, match="not found"):
        check_gguf(tmp_path / "missing.gguf")
    llama = write_gguf(tmp_path / "llama.gguf", arch="llama")
    with pytest.raises(UserError, match="is a 'llama' model; sc2lsp serves starcoder2"):
        check_gguf(llama)
    assert check_gguf(llama, arch=None).arch == "llama"
    adapter = write_gguf(tmp_path / "lora.gguf", general_type="adapter")
    with pytest.raises(UserError, match="LoRA adapter, not a model"):
        check_gguf(adapter)
    assert check_gguf(adapter, adapter=True).type == "adapter"
    with pytest.raises(UserError, match="not a LoRA adapter"):
        check_gguf(write_gguf(tmp_path / "m.gguf"), adapter=True)


def test_check_gguf_says_which_pull_repairs_a_cached_file(tmp_path, monkeypatch):
    env = Env(tmp_path, "http://127.0.0.1:9")
    env.register()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env.config))
    monkeypatch.delenv("SC2LSP_MODELS_TOML", raising=False)
    data = write_gguf(tmp_path / "whole.gguf", n_floats=4096).read_bytes()
    cached = env.repo_cache / "snapshots" / COMMIT / FILE  # where `models pull` puts it
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data[:-1])
    with pytest.raises(UserError, match=r"truncated GGUF .*; run `sc2lsp models pull test-tiny` again$"):
        check_gguf(cached)
    elsewhere = tmp_path / "elsewhere.gguf"
    elsewhere.write_bytes(data[:-1])
    with pytest.raises(UserError, match=r"; download or convert it again"):
        check_gguf(elsewhere)
