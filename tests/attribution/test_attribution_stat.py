"""A file verified once (hashed against its indexed blob) is not hashed again while its stat
(size, mtime_ns, inode, ctime_ns) is the one it had when read; a file whose stat changed is
read and hashed again, so an edited file is never reported as verified, in a new index object
or in one that has the file's text cached already."""

from __future__ import annotations

import os
import random

import pytest

from sc2lsp.attribution import AttributionIndex, build_index
from sc2lsp.attribution import segment as segment_mod

from test_attribution import code_like

OLD = 1_600_000_000  # an mtime long past: the file's stat is settled (not "racily clean")


pytestmark = pytest.mark.usefixtures("fresh_verified")


def _corpus(tmp_path, seed: int):
    rng = random.Random(seed)
    src = tmp_path / "src"
    src.mkdir()
    text = code_like(rng, 60) + "# end\n"
    f = src / "m.py"
    f.write_text(text)
    os.utime(f, (OLD, OLD))
    build_index([src], tmp_path / "idx")
    return f, text, text[500:1300]


def _verified(idx: AttributionIndex, snippet: str) -> bool | None:
    """True/False: every source verified / none; None when nothing was found."""
    got = {s.verified for sp in idx.check(snippet) for s in sp.sources}
    return None if not got else (got == {True} or (False if got == {False} else "mixed"))


def _same_size_edit(f, text: str) -> None:
    f.write_text(text.replace("# end", "# fin"))  # outside the snippet, same size


def test_a_settled_file_is_hashed_once_per_process(tmp_path, hashes):
    f, text, snippet = _corpus(tmp_path, 1)
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is True
    assert len(hashes) == 1
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is True  # a new cache, same stat
    assert len(hashes) == 1


def test_a_same_size_edit_is_seen_by_a_new_index_and_by_the_cache(tmp_path, hashes):
    f, text, snippet = _corpus(tmp_path, 2)
    idx = AttributionIndex.open(tmp_path / "idx")
    assert _verified(idx, snippet) is True
    _same_size_edit(f, text)  # new mtime (and ctime)
    assert os.path.getsize(f) == len(text)
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is False
    assert _verified(idx, snippet) is False  # the cached text is not used: the stat changed
    assert len(hashes) == 3
    f.write_text(text)  # back as indexed (a new stat: hashed again, verified again)
    assert _verified(idx, snippet) is True and len(hashes) == 4


def test_an_edit_with_its_mtime_put_back_is_seen_from_ctime(tmp_path, hashes):
    f, text, snippet = _corpus(tmp_path, 3)
    idx = AttributionIndex.open(tmp_path / "idx")
    assert _verified(idx, snippet) is True
    before = os.stat(f)
    _same_size_edit(f, text)
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))  # size and mtime as before
    after = os.stat(f)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    # ctime cannot be set back (utime sets it to now): the edit is seen
    assert after.st_ctime_ns != before.st_ctime_ns
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is False
    assert _verified(idx, snippet) is False


def test_a_recently_written_file_is_not_remembered(tmp_path, hashes):
    f, text, snippet = _corpus(tmp_path, 4)
    f.write_text(text)  # same text, written now: its stat is racy, so it is hashed on every read
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is True
    assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is True
    assert len(hashes) == 2 and segment_mod._VERIFIED == {}


def test_a_changed_file_is_not_remembered(tmp_path, hashes):
    f, text, snippet = _corpus(tmp_path, 5)
    _same_size_edit(f, text)
    os.utime(f, (OLD, OLD))
    for _ in range(2):
        assert _verified(AttributionIndex.open(tmp_path / "idx"), snippet) is False
    assert len(hashes) == 2 and segment_mod._VERIFIED == {}
