"""Simple-Python probes: does a model visibly complete everyday Python through the server's pipeline?

Each probe is a small file with a cursor (``|``), the kind of spot where an editor asks for a
suggestion, and a check on the first line of what the server would show. The probes go through
``sc2lsp.engine.Engine`` (prompt building, token healing, llama.cpp, post-processing), exactly as
``sc2lsp complete`` and the LSP server do, so a pass means the user would see it.

``python -m finetune export-tiny`` records them in ``models/sc2-tiny/metrics.json``; the model card
quotes them; ``tests/test_sc2_tiny_probes.py`` keeps the shipped model from regressing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

_MODULES = {"os", "sys", "re", "json", "time", "math", "random", "logging", "subprocess", "collections",
            "itertools", "functools", "typing", "pathlib", "io", "shutil", "argparse", "tempfile"}
_COLLECTIONS = {"OrderedDict", "defaultdict", "namedtuple", "deque", "Counter", "ChainMap", "UserDict",
                "UserList", "UserString", "abc"}


def _first_word(s: str) -> str:
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", s)
    return m.group(1) if m else ""


@dataclass(frozen=True)
class Probe:
    name: str
    text: str  #: the file, with one ``|`` marking the cursor
    check: Callable[[str], bool]  #: on the first line of the suggestion
    want: str  #: what ``check`` accepts, in words (for the model card)

    def split(self) -> tuple[str, int]:
        i = self.text.index("|")
        return self.text[:i] + self.text[i + 1 :], i


PROBES: tuple[Probe, ...] = (
    Probe("self in __init__", "class Point:\n    def __init__(|):\n        pass\n",
          lambda s: s.lstrip().startswith("self"), "starts with `self`"),
    Probe("self in a method", "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(|\n",
          lambda s: s.lstrip().startswith("self"), "starts with `self`"),
    Probe("main guard", "import sys\n\n\ndef main():\n    print(sys.argv)\n\n\nif __name__ == |\n",
          lambda s: re.match(r"""\s*(['"])__main__\1\s*:""", s) is not None, "`'__main__':`"),
    Probe("close a call", "def area(w, h):\n    return abs(w * h|\n",
          lambda s: s.strip().startswith(")"), "closes with `)`"),
    Probe("close a list", "def primes():\n    return [2, 3, 5, 7|\n",
          lambda s: "]" in s and s.count("[") < s.count("]"), "closes the list with `]`"),
    Probe("import a module", "import |\n\n\ndef here():\n    return os.path.dirname(os.path.abspath(__file__))\n",
          lambda s: _first_word(s) in _MODULES, "a standard module (`os`)"),
    Probe("from collections import", "from collections import |\n",
          lambda s: _first_word(s) in _COLLECTIONS, "a name from `collections`"),
    Probe("read a file", "def load(path):\n    with open(path) as f:\n        return f.|\n",
          lambda s: _first_word(s) in {"read", "readlines", "readline"}, "`read`/`readline(s)`"),
    Probe("for loop", "def total(items):\n    n = 0\n    for item in |\n",
          lambda s: _first_word(s) in {"items", "range", "enumerate", "sorted", "reversed"}, "iterates `items`"),
    Probe("return self attribute", "class Box:\n    def __init__(self, size):\n        self.size = size\n\n    def get_size(self):\n        return |\n",
          lambda s: s.strip().startswith("self."), "`self.<attribute>`"),
    Probe("raise", "def check(x):\n    if x is None:\n        raise |\n",
          lambda s: re.match(r"\s*[A-Z][A-Za-z]*(Error|Exception)\b", s) is not None, "an exception class"),
    Probe("except", "try:\n    import json\nexcept |\n",
          lambda s: _first_word(s) in {"ImportError", "ModuleNotFoundError", "Exception"}, "`ImportError`"),
)


def run_probes(model: str, *, threads: int = 1, max_tokens: int = 32) -> list[dict]:
    """Run every probe through the server's engine on ``model`` (a models.toml name or a GGUF path)."""
    from sc2lsp.config import parse_settings
    from sc2lsp.engine import Cursor, Engine

    settings, problems = parse_settings({"model": model, "maxTokens": max_tokens, "threads": threads, "warmUp": False,
                                         "maxPromptMs": 600_000, "maxPredictMs": 600_000})
    if problems:
        raise ValueError("; ".join(problems))
    engine = Engine(settings, notify=lambda level, message: None)
    engine.start().result()
    out = []
    try:
        for p in PROBES:
            text, offset = p.split()
            s = engine.complete(Cursor("file:///probe/example.py", text, offset, "python", "example.py")).future.result()
            first = s.text.split("\n", 1)[0]
            out.append({"name": p.name, "before": text[:offset].rsplit("\n", 1)[-1], "after": text[offset:].split("\n", 1)[0],
                        "suggestion": s.text, "ok": bool(first.strip()) and p.check(first), "want": p.want})
    finally:
        engine.close()
    return out
