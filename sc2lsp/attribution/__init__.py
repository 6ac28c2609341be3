"""Attribution: is a suggestion a copy of something in a corpus, and under which license?

Public API (used by the LSP server and ``finetune``)::

    from sc2lsp.attribution import AttributionIndex, build_index, add_to_index, Document

    build_index(["corpus/dir", Document(path="a.py", text="...")], "index/")
    spans = AttributionIndex.open("index/").check(text, exclude=[workspace_root])
    [s.to_dict() for s in spans]   # JSON: start/end (raw offsets), kind, documents, sources, licenses

``OverlapClient`` (in ``.server``) talks to any Data Portraits ``/overlap`` server.
"""

from .build import BuildStats, Document, add_to_index, build_index
from .query import AttributionIndex, Source, Span

__all__ = ["AttributionIndex", "BuildStats", "Document", "Source", "Span", "add_to_index", "build_index"]
