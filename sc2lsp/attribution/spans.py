"""What an attribution check answers: ``Span``s of the checked text found in the corpus, each
with up to N ``Source``s (where it was found, under which license)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Source:
    repository: str | None
    path: str
    root: str | None
    revision: str | None
    blob: str
    license: str | None
    license_source: str | None
    license_file: bool
    start_line: int | None
    end_line: int | None
    verified: bool


@dataclass
class Span:
    start: int  #: raw offset in the checked text
    end: int
    length: int  #: in normalised characters
    text: str
    kind: str  #: "copy", "common" (in more than ``common_threshold`` documents) or "license_text"
    documents: int  #: documents of the index (outside the excluded paths) containing the span
    documents_exact: bool
    licenses: list[str | None]
    sources: list[Source] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)
