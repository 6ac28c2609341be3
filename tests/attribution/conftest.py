"""Fixtures shared by the attribution tests that count hashing."""

from __future__ import annotations

import pytest

from sc2lsp.attribution import segment as segment_mod

from test_attribution_query_cost import _hash_calls


@pytest.fixture
def fresh_verified(monkeypatch):
    """The process-wide memory of files verified by hash starts empty for this test."""
    monkeypatch.setattr(segment_mod, "_VERIFIED", {})


@pytest.fixture
def hashes(monkeypatch) -> list:
    """The documents hashed against their indexed blob during the test, in order."""
    return _hash_calls(monkeypatch)
