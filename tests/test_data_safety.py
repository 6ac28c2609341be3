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
