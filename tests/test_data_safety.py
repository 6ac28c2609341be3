"""Data safety: index manifests cannot reach outside their index; damaged inputs give one UserError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sc2lsp.attribution import AttributionIndex, Document, build_index
from sc2lsp.errors import UserError


@pytest.fixture
def small_index(tmp_path):
    out = tmp_path / "idx"
    docs = [Document(path=f"f{i}.py", text=f"def function_{i}(a, b):\n    return a * {i} + b - {i * 7}\n" * 6)
            for i in range(8)]
    build_index(docs, out)
    return out


@pytest.mark.parametrize("bad", ["../victim.txt", "/tmp/x.sc2a", "seg-a/../../victim.sc2a", "seg-x.sc2a/..",
                                 "manifest.json", 7, None])
def test_segment_names_are_validated_before_read_and_delete(tmp_path, small_index, bad):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    m = json.loads((small_index / "manifest.json").read_text())
    m["segments"].append({**m["segments"][0], "file": bad})
    (small_index / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="seg-"):
        AttributionIndex.open(small_index)
    build_index([Document(path="z.py", text="def z():\n    return 1\n" * 10)], small_index)  # a rebuild
    assert victim.read_text() == "keep me"
    AttributionIndex.open(small_index)  # the rebuilt index is fine


# ---------------------------------------------------------------- fuzzing damaged inputs

import random  # noqa: E402
import struct  # noqa: E402

from sc2lsp.models.gguf_check import check_gguf  # noqa: E402


def _gguf_bytes(nest: int = 1) -> bytes:
    def s(x: str) -> bytes:
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    kv = [s("general.architecture") + struct.pack("<I", 8) + s("starcoder2"),
          s("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", 32),
          s("starcoder2.context_length") + struct.pack("<I", 4) + struct.pack("<I", 2048),
          s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 40) + b"".join(s(f"tok{i}") for i in range(40)),
          s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 8) + struct.pack("<8f", *range(8))]
    arr = struct.pack("<IQ", 4, 2) + struct.pack("<II", 1, 2)
    for _ in range(nest):
        arr = struct.pack("<IQ", 9, 1) + arr
    kv.append(s("nested") + struct.pack("<I", 9) + arr)
    tensors = [s("token_embd.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 64, 2) + struct.pack("<IQ", 0, 0),
               s("output_norm.bias") + struct.pack("<I", 1) + struct.pack("<Q", 32) + struct.pack("<IQ", 1, 512)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv) + b"".join(tensors)
    head += b"\x00" * (-len(head) % 32)
    return head + bytes(range(256)) * 3


def _only_user_errors(fn) -> int:
    try:
        fn()
        return 0
    except UserError:
        return 1


@pytest.mark.slow
def test_gguf_fuzz_truncations_and_byte_flips(tmp_path):
    good = _gguf_bytes()
    path = tmp_path / "m.gguf"
    path.write_bytes(good)
    assert check_gguf(path, hint="").n_tensors == 2
    rng = random.Random(1234)
    header_end = len(good) - 768
    cases = [good[:n] for n in range(0, header_end + 8)]
    for _ in range(1800):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(header_end)] = rng.randrange(256)
        cases.append(bytes(b))
    cases.append(_gguf_bytes(nest=5000))  # arrays of arrays, 5,000 deep
    errors = 0
    for data in cases:
        path.write_bytes(data)
        errors += _only_user_errors(lambda: check_gguf(path, hint=""))  # anything else fails the test
    assert errors > len(cases) // 4


@pytest.mark.slow
def test_attribution_index_fuzz_truncations_and_byte_flips(tmp_path, small_index):
    seg = next(small_index.glob("seg-*.sc2a"))
    good_seg, good_man = seg.read_bytes(), (small_index / "manifest.json").read_bytes()
    query = "def function_3(a, b):\n    return a * 3 + b - 21\n" * 3
    assert AttributionIndex.open(small_index).check(query)
    rng = random.Random(99)
    cases = [("seg", good_seg[:n]) for n in sorted(rng.sample(range(len(good_seg)), 300))]
    cases += [("man", good_man[:n]) for n in range(0, len(good_man), max(1, len(good_man) // 200))]
    head_len = 16 + struct.unpack("<I", good_seg[12:16])[0]
    for _ in range(900):
        b = bytearray(good_seg)
        for _ in range(rng.randint(1, 3)):  # mostly the header and the first sections, where damage bites
            b[rng.randrange(min(len(b), head_len + 4096)) if rng.random() < 0.8 else rng.randrange(len(b))] = \
                rng.randrange(256)
        cases.append(("seg", bytes(b)))
    for _ in range(300):
        b = bytearray(good_man)
        b[rng.randrange(len(b))] = rng.randrange(32, 127)
        cases.append(("man", bytes(b)))

    def open_and_query():
        AttributionIndex.open(small_index).check(query)

    for which, data in cases:
        seg.write_bytes(data if which == "seg" else good_seg)
        (small_index / "manifest.json").write_bytes(data if which == "man" else good_man)
        _only_user_errors(open_and_query)


# ---------------------------------------------------------------- the attribution HTTP server's bounds

import socket as _socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

from sc2lsp.attribution.server import AttributionServer  # noqa: E402


def test_attribution_server_bounds_stalled_clients_and_hides_paths(small_index):
    srv = AttributionServer(AttributionIndex.open(small_index), "127.0.0.1", 0, workers=4, timeout=1.0)
    srv.start_background()
    try:
        before = threading.active_count()
        stalled = []
        for _ in range(40):  # POSTs that never send their body
            s = _socket.create_connection(srv.server_address[:2], timeout=5)
            s.sendall(b"POST /check HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            stalled.append(s)
        time.sleep(0.3)
        assert threading.active_count() - before <= 4 + 1  # the pool, not a thread per connection
        end = time.monotonic() + 15
        while True:  # the stalled ones time out and free the pool
            try:
                with urllib.request.urlopen(srv.url + "/health", timeout=5) as r:
                    health = r.read().decode()
                break
            except Exception:
                assert time.monotonic() < end, "the server never answered again"
                time.sleep(0.2)
        assert '"status": "ok"' in health
        assert str(small_index) not in health and str(small_index.parent) not in health
        for s in stalled:
            s.close()
    finally:
        srv.shutdown()
        srv.server_close()
