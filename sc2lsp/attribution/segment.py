"""One segment of an attribution index, read through ``mmap``: postings lookup, the document table,
and finding a window again in a document (postings name the document, not the offset).
"""

from __future__ import annotations

import json
import unicodedata
import zlib
from pathlib import Path

import numpy as np

from .build import blob_hash
from .hashing import WINDOW, bucket_and_fingerprint
from .normalize import normalize, normalize_with_offsets
from .store import SegmentFile

#: How many occurrences of a window's longest token ``locate`` normalises around (and 32x as many it
#: looks at) before it normalises the whole document instead.
MAX_TRIES = 64
#: Documents up to this many normalised characters are normalised whole to find a window.
SMALL_DOC = 4000


class Segment:
    def __init__(self, sf: SegmentFile):
        h = sf.header
        self.file = sf
        self.stride = int(h["stride"])
        self.cap = int(h["cap"])
        self.n_buckets = int(h["buckets"])
        self.roots: list[str] = h["roots"]
        self.bucket_start = sf.array("bucket_start")
        self.post_fp = sf.array("post_fp")
        self.post_doc = sf.array("post_doc")
        self.capped_idx = sf.array("capped_idx")
        self.capped_cnt = sf.array("capped_cnt")
        self.alias = sf.array("doc_alias")
        self.meta_off = sf.array("doc_meta_off")
        self.text_off = sf.array("doc_text_off")
        self.nchars = sf.array("doc_nchars")
        self.ckpt_first = sf.array("doc_ckpt_first")
        self.ckpt = sf.array("doc_ckpt")
        self.every = int(h["checkpoint"])
        self.n_docs = len(self.alias)
        self._check_tables()
        rep = np.where(self.alias < 0, np.arange(self.n_docs), self.alias)
        self._order = np.argsort(rep, kind="stable")
        self._rep_sorted = rep[self._order]
        self.weights = np.bincount(rep, minlength=self.n_docs)  # documents each posting stands for
        self._meta: dict[int, dict] = {}
        self._strings: list[str] | None = None

    def _check_tables(self) -> None:
        """Cheap consistency checks, so damage is a clear error instead of a huge allocation."""
        n, bs = self.n_docs, self.bucket_start
        ok = (1 <= self.every <= 1 << 24 and 1 <= self.stride <= 1 << 16 and self.n_buckets >= 1
              and len(bs) == self.n_buckets + 1 and int(bs[0]) == 0 and int(bs[-1]) == len(self.post_fp)
              and len(self.post_doc) == len(self.post_fp) and bool(np.all(bs[1:] >= bs[:-1]))
              and len(self.nchars) == n and len(self.meta_off) == n + 1 and len(self.text_off) == n + 1
              and len(self.ckpt_first) == n + 1 and len(self.capped_cnt) == len(self.capped_idx)
              and (len(self.post_doc) == 0 or int(self.post_doc.max()) < n)
              and bool(np.all(self.alias < np.arange(n))) and bool(np.all(self.alias >= -1)))
        if ok and n:
            a = self.alias[self.alias >= 0]
            ok = bool(np.all(self.alias[a] < 0))
        if not ok:
            raise ValueError("segment tables are inconsistent")

    def members(self, d: int) -> list[int]:
        """Document ``d`` and the documents identical to it (its group; the original first)."""
        r = int(self.alias[d]) if self.alias[d] >= 0 else d
        lo, hi = np.searchsorted(self._rep_sorted, [r, r + 1])
        return self._order[lo:hi].tolist()

    def meta(self, d: int) -> dict:
        """The document table's row ``d``: path, repo, rev, blob, license, license_source,
        license_file and root_path (absent for documents stored in the index)."""
        m = self._meta.get(d)
        if m is None:
            if self._strings is None:
                self._strings = json.loads(self.file.blob("strings"))
            row = json.loads(self.file.blob("doc_meta", int(self.meta_off[d]), int(self.meta_off[d + 1])))
            path, repo, rev, blob, lic, lic_src, lic_file, root = row
            s = self._strings
            m = {"path": path, "repo": s[repo] if repo >= 0 else None, "rev": s[rev] if rev >= 0 else None,
                 "blob": blob, "license": s[lic] if lic >= 0 else None,
                 "license_source": s[lic_src] if lic_src >= 0 else None, "license_file": bool(lic_file)}
            if root >= 0:
                m["root_path"] = self.roots[root]
            self._meta[d] = m
        return m

    def abs_path(self, d: int) -> str | None:
        m = self.meta(d)
        return f"{m['root_path']}/{m['path']}" if "root_path" in m else None

    def raw_text(self, d: int) -> str | None:
        """The document's text, or None when its file is gone or changed since indexing."""
        a, b = int(self.text_off[d]), int(self.text_off[d + 1])
        if b > a:
            return zlib.decompress(self.file.blob("doc_text", a, b)).decode("utf-8", "surrogatepass")
        p = self.abs_path(d)
        if p is None:
            return self.raw_text(int(self.alias[d])) if self.alias[d] >= 0 else None
        try:
            data = Path(p).read_bytes()
        except OSError:
            return None
        if blob_hash(data) != self.meta(d)["blob"]:
            return None
        return data.decode("utf-8", "surrogatepass")

    def region(self, d: int, raw: str, lo: int, hi: int) -> "Region":
        """The normalised text of document ``d`` covering at least ``[lo, hi)`` (normalised
        positions, clipped to the document): ``text[k]`` is normalised character ``base + k``.
        Only the raw text between two checkpoints is normalised.
        """
        c0, c1 = int(self.ckpt_first[d]), int(self.ckpt_first[d + 1])
        j0 = min(max(lo, 0) // self.every, c1 - c0 - 1)
        j1 = max(hi, 0) // self.every + 1
        raw_a = int(self.ckpt[c0 + j0])
        raw_b = int(self.ckpt[c0 + j1]) if c0 + j1 < c1 else len(raw)
        piece = raw[raw_a:raw_b]
        base = j0 * self.every + (1 if piece[:1].isspace() else 0)  # a leading run is dropped
        return Region(base, normalize(piece), raw_a, piece, raw)

    def locate(self, d: int, raw: str, window: str, exact: bool, start: int = 0) -> int | None:
        """Normalised position of ``window`` in document ``d`` at or after ``start`` (None when it
        is not there).

        ``exact``: the raw text is ASCII or NFC, so every whitespace-free piece of the normal form
        is verbatim in it. Then the window's longest token is searched in the raw text and only
        the checkpoint interval around each occurrence is normalised (occurrences whose next
        characters, whitespace aside, differ from the window's are skipped unread); otherwise, or
        for a small document, the whole document is normalised.
        """
        n = int(self.nchars[d])
        if exact and n > SMALL_DOC:
            tok = max(window.split(), key=len)
            k = window.index(tok)
            after = "".join(window[k + len(tok):].split())
            c0, c1 = int(self.ckpt_first[d]), int(self.ckpt_first[d + 1])
            ck = self.ckpt[c0:c1]
            j = min(start // self.every, c1 - c0 - 1)
            p, tries, seen = raw.find(tok, int(ck[j]) if j >= 0 else 0), 0, 0
            while p >= 0 and tries < MAX_TRIES and seen < 32 * MAX_TRIES:
                seen += 1
                e = p + len(tok)
                nxt = "".join(raw[e : e + len(after) + 256].split())[: len(after)]
                if after.startswith(nxt):
                    tries += 1
                    j = int(np.searchsorted(ck, p, side="right")) - 1
                    reg = self.region(d, raw, j * self.every - WINDOW - 2, (j + 1) * self.every + WINDOW + 2)
                    i = reg.text.find(window, max(0, start - reg.base))
                    if i >= 0:
                        return reg.base + i
                p = raw.find(tok, p + 1)
            if p < 0:
                return None
        reg = self.region(d, raw, 0, n)
        i = reg.text.find(window, max(0, start - reg.base))
        return None if i < 0 else reg.base + i

    def lookup(self, qh: np.ndarray):
        """Postings of the query window hashes ``qh``: (query position, document) per posting, and
        per query position the total documents of a capped hash (0 where none is capped)."""
        bkt, fpq = bucket_and_fingerprint(qh, self.n_buckets)
        lo = self.bucket_start[bkt].astype(np.int64)
        lens = self.bucket_start[bkt + 1].astype(np.int64) - lo
        rep = np.repeat(np.arange(len(qh)), lens)
        ent = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(lo, lens)
        ok = self.post_fp[ent] == fpq[rep]
        qp, ent = rep[ok], ent[ok]
        doc = self.post_doc[ent].astype(np.int64)
        capped = np.zeros(len(qh), dtype=np.int64)
        if len(self.capped_idx) and len(ent):
            j = np.searchsorted(self.capped_idx, ent.astype(np.uint32), side="right").astype(np.int64) - 1
            jj = np.maximum(j, 0)
            big = (j >= 0) & (ent < self.capped_idx[jj].astype(np.int64) + self.cap)
            if big.any():
                np.maximum.at(capped, qp[big], self.capped_cnt[jj[big]].astype(np.int64))
        return qp, doc, capped


def is_exact(raw: str) -> bool:
    """Whether the normal form of ``raw`` changes nothing but whitespace (see ``Segment.locate``)."""
    return raw.isascii() or unicodedata.is_normalized("NFC", raw)


class Region:
    """Part of a document's normal form; raw offsets are computed only for reported sources."""

    __slots__ = ("base", "text", "raw_a", "piece", "raw", "_offsets")

    def __init__(self, base: int, text: str, raw_a: int, piece: str, raw: str):
        self.base, self.text, self.raw_a, self.piece, self.raw, self._offsets = base, text, raw_a, piece, raw, None

    def raw_offset(self, k: int) -> int:
        """Raw offset (in the whole document) of the region's normalised character ``k``."""
        if self._offsets is None:
            self._offsets = normalize_with_offsets(self.piece)[1]
        return int(self._offsets[k]) + self.raw_a
