"""The optional compiled kernels of the attribution query path (``_speedups.c``), or None.

``pip install`` builds them when a C compiler is there (setup.py marks the extension optional);
without it, or with ``SC2LSP_NO_SPEEDUPS=1`` in the environment, the Python code runs instead.
Both give the same answers (tests/attribution/test_attribution_speedups.py compares them); a
build whose API version is not the one this code expects (a stale ``.so`` left in the tree) is
not used.
"""

from __future__ import annotations

import os

#: The ``_speedups.API`` this code expects.
API = 1


def _load():
    if os.environ.get("SC2LSP_NO_SPEEDUPS"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups if getattr(_speedups, "API", None) == API else None


#: The compiled module, or None (then the Python code runs).
C = _load()
