"""The build records each corpus file's settled stat (``doc_stat``) and whether its normal form
changes only whitespace (``doc_flags``), so a fresh process takes a file whose stat is the one
recorded as its indexed blob without hashing it (and without an NFC check); a file whose stat
differs in any way is hashed as before, and an index without those sections (built before them)
reads and answers as before."""

from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest

from sc2lsp.attribution import AttributionIndex, build_index, filestat
from sc2lsp.attribution import rawsearch
from sc2lsp.attribution.store import open_segment, write_segment

from test_attribution import code_like

OLD = 1_600_000_000


pytestmark = pytest.mark.usefixtures("fresh_verified")


def _write(f, text: str) -> None:
    f.write_text(text, encoding="utf-8")
    os.utime(f, (OLD, OLD))


def _build(tmp_path, files: dict[str, str], monkeypatch, settled: bool = True):
    """Files written (mtime long past) and indexed; ``settled``: their ctime (now) counts as
    settled too (``RACY_NS`` 0 for the build), as a corpus installed long ago is."""
    src = tmp_path / "src"
    src.mkdir()
    for name, text in files.items():
        _write(src / name, text)
    if settled:
        time.sleep(0.02)
        monkeypatch.setattr(filestat, "RACY_NS", 0)
    build_index([src], tmp_path / "idx")
    monkeypatch.setattr(filestat, "RACY_NS", 2_000_000_000)
    return src


def _answer(idx: AttributionIndex, q: str):
    return [s.to_dict() for s in idx.check(q)]


def _verified(idx: AttributionIndex, snippet: str):
    got = {s.verified for sp in idx.check(snippet) for s in sp.sources}
    return None if not got else (got == {True} or (False if got == {False} else "mixed"))


def _strip_sections(index_dir) -> None:
    """Rewrite the index's segments without ``doc_stat`` / ``doc_flags`` (an index built before them)."""
    for seg in index_dir.glob("seg-*.sc2a"):
        sf = open_segment(seg)
        sections = {name: (sf.blob(name) if dtype == "bytes" else sf.array(name).copy())
                    for name, (_, dtype, _) in sf.header["sections"].items() if name not in ("doc_stat", "doc_flags")}
        header = {k: v for k, v in sf.header.items() if k != "sections"}
        sf._mm.close()
        write_segment(seg, header, sections)


def test_a_file_with_the_recorded_stat_is_not_hashed(tmp_path, monkeypatch, hashes):
    text = code_like(random.Random(1), 60) + "# end\n"
    src = _build(tmp_path, {"m.py": text}, monkeypatch)
    seg = AttributionIndex.open(tmp_path / "idx").segments[0]
    assert int(seg.stat[0]) == filestat.stat_digest(filestat.stat_key(os.stat(src / "m.py")))
    snippet = text[500:1300]
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is True
    assert hashes == []
    # a same-size edit (new mtime and ctime): hashed, not verified
    (src / "m.py").write_text(text.replace("# end", "# fin"))
    assert os.path.getsize(src / "m.py") == len(text)
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is False
    assert len(hashes) == 1
    # size and mtime put back: ctime differs from the recorded one, so it is hashed and not trusted
    os.utime(src / "m.py", (OLD, OLD))
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is False
    assert len(hashes) == 2
    # the indexed text again (new ctime): hashed, found to be its blob
    _write(src / "m.py", text)
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is True
    assert len(hashes) == 3


def test_a_racy_file_is_not_recorded(tmp_path, monkeypatch, hashes):
    text = code_like(random.Random(2), 60)
    _build(tmp_path, {"m.py": text}, monkeypatch, settled=False)  # ctime: just now
    seg = AttributionIndex.open(tmp_path / "idx").segments[0]
    assert int(seg.stat[0]) == 0
    assert _verified(AttributionIndex.open(tmp_path / "idx"), text[400:1200]) is True
    assert len(hashes) == 1


def _texts(rng: random.Random) -> dict[str, str]:
    """An ASCII file, an NFC file with accents and a file that is not NFC (decomposed accents in
    the very lines a query copies), each sharing nothing with the others."""
    def with_accents(e: str) -> str:  # every line ends with its longest token, accented
        lines = code_like(rng, 50).splitlines()
        return "\n".join(f"{ln}  # r{e}sum{e}_caf{e}_d{e}j{e}_vu_{i}_{rng.randrange(10**6)}"
                         for i, ln in enumerate(lines)) + "\n"
    return {"a.py": code_like(rng, 50), "nfc.py": with_accents("\u00e9"), "nfd.py": with_accents("e\u0301")}


def test_flags_and_answers_match_an_index_without_the_new_sections(tmp_path, monkeypatch, hashes):
    rng = random.Random(3)
    files = _texts(rng)
    _build(tmp_path, files, monkeypatch)
    new = AttributionIndex.open(tmp_path / "idx")
    seg = new.segments[0]
    flags = {seg.meta(d)["path"]: seg.exact_flag(d) for d in range(seg.n_docs)}
    assert flags == {name: rawsearch.is_exact(t) for name, t in files.items()} == {
        "a.py": True, "nfc.py": True, "nfd.py": False}
    queries = [t[a : a + 900] for t in files.values() for a in (0, 700, 1500)]
    got_new = [_answer(new, q) for q in queries]
    assert hashes == []
    assert all(ans and all(s["verified"] for sp in ans for s in sp["sources"]) for ans in got_new)
    _strip_sections(tmp_path / "idx")
    old = AttributionIndex.open(tmp_path / "idx")
    assert old.segments[0].stat is None and old.segments[0].exact_flag(0) is None
    assert [_answer(old, q) for q in queries] == got_new
    assert len(hashes) == 3  # each file hashed once, as before the sections


def test_a_known_text_needs_no_nfc_check(tmp_path, monkeypatch):
    files = _texts(random.Random(4))
    _build(tmp_path, files, monkeypatch)
    calls = []
    real = rawsearch.is_exact
    monkeypatch.setattr(rawsearch, "is_exact", lambda raw: calls.append(len(raw)) or real(raw))
    idx = AttributionIndex.open(tmp_path / "idx")
    for t in files.values():
        assert idx.check(t[300:1200])
    assert calls == []
    _strip_sections(tmp_path / "idx")
    idx = AttributionIndex.open(tmp_path / "idx")
    for t in files.values():
        assert idx.check(t[300:1200])
    assert len(calls) == 2  # the two non-ASCII files


def test_stat_digest_tells_every_field_apart():
    key = (1000, 1_600_000_000_123_456_789, 42, 1_600_000_001_000_000_000)
    digests = {filestat.stat_digest(key)}
    for i in range(4):
        k = list(key)
        k[i] += 1
        digests.add(filestat.stat_digest(tuple(k)))
    assert len(digests) == 5 and 0 not in digests
    assert np.uint64(filestat.stat_digest(key)) == filestat.stat_digest(key)  # fits the u64 section
