"""End-to-end fixtures (helpers in ``e2e_helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e_helpers import MODEL


@pytest.fixture(scope="session")
def model_path() -> str:
    if not Path(MODEL).is_file():
        pytest.fail(f"the embedded model {MODEL} is missing (run `make model` or restore it)")
    return MODEL
