"""Repository-format samples with related files first (``make_documents(related_rate=...)``)."""

from __future__ import annotations

import random

from finetune.data.pack import make_documents
from finetune.data.related import related_fragments
from sc2lsp.core.prompt import SourceFile, repository_sample
from sc2lsp.core.tokens import ENDOFTEXT, FILE_SEP

GRAPH = "class Graph:\n    def add_node(self, n):\n        self.nodes[n] = {}\n"
PATHS = "def path_graph(n):\n    G = Graph()\n    return G\n\n\ndef star_graph(n):\n    return n\n"
USER = ("import pkg.paths as paths\nfrom pkg.graph import Graph\n\n\n"
        "def ring(n):\n    G = paths.path_graph(n)\n    H = Graph()\n    return G, H\n")
LONELY = "def helper():\n    return path_graph\n"  # names path_graph without importing it
FILES = [("pkg/graph.py", GRAPH), ("pkg/paths.py", PATHS), ("pkg/user.py", USER), ("pkg/lonely.py", LONELY)]


def test_related_fragments_follow_imports():
    frags = {p: [t] for p, t in FILES}
    rel = related_fragments(FILES, frags, max_related=2)
    assert rel[("pkg/user.py", 0)] == [("pkg/graph.py", 0), ("pkg/paths.py", 0)]
    assert ("pkg/lonely.py", 0) not in rel  # a name that is not imported points at nothing
    assert ("pkg/paths.py", 0) not in rel  # Graph used there, but never imported


def test_related_documents_put_the_definitions_first():
    docs = make_documents(FILES, repo="r", seed=0, related_rate=1.0, fim_rate=0.0, metadata_rate=1.0)
    user_doc = next(d for d in docs if "pkg/user.py" in d)
    parts = user_doc.removesuffix(ENDOFTEXT).split(FILE_SEP)[1:]
    assert [p.split("\n", 1)[0] for p in parts] == ["pkg/graph.py", "pkg/paths.py", "pkg/user.py"]
    # every fragment is still a sample of its own exactly once as the last file of a document
    lasts = [d.removesuffix(ENDOFTEXT).split(FILE_SEP)[-1].split("\n", 1)[0] for d in docs]
    assert sorted(p for p in lasts if p == "pkg/user.py") == ["pkg/user.py"]


def test_related_rate_zero_keeps_the_old_samples():
    a = make_documents(FILES, repo="r", seed=3)
    b = make_documents(FILES, repo="r", seed=3, related_rate=0.0)
    assert a == b
    files = [SourceFile(p, t) for p, t in FILES[:3]]
    ordered = repository_sample(files, random.Random(1), repo="r", fim_rate=0.0, metadata_rate=1.0, shuffle=False)
    assert [p.split("\n", 1)[0] for p in ordered.split(FILE_SEP)[1:]] == ["pkg/graph.py", "pkg/paths.py",
                                                                         "pkg/user.py"]
