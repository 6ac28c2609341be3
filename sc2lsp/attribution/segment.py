"""One segment of an attribution index, read through ``mmap``: postings lookup, the document table,
and finding a window again in a document (postings name the document, not the offset).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from bisect import bisect_right

import numpy as np

from .build import FLAG_EXACT, blob_hash
from .filestat import RACY_NS, stat_digest, stat_key
from .frequent import best_frequent
from .hashing import WINDOW, bucket_and_fingerprint
from .normalize import normalize
from .rawsearch import DocText, RawHit, _common_len, scan_raw
from .region import Region
from .tight import extension, reaches_edge, sole_holder, tight_piece
from .store import SegmentFile, json_row

#: Whether ``locate`` normalises only the text around a hit when that gives the same answer
#: (``tight``); off, it always normalises checkpoint intervals (tests compare the two).
TIGHT = True
#: How many times per document ``locate`` finds a window whose token is too frequent to scan (in
#: an ASCII document) from small pieces (``frequent``) before it normalises the whole document and
#: keeps that normal form instead (0: always the whole document; tests compare the two).
FREQUENT = 1

#: A file's stat when it was read: (size, mtime_ns, inode, ctime_ns), and whether it was older
#: than ``RACY_NS`` then (only such a stat is remembered as verified; git's "racily clean" rule).
FileStamp = tuple[tuple[int, int, int, int], bool]
#: Per process, for each file found to be its indexed blob: (its stat then, the blob). A file
#: read again with that very stat is not hashed again (a stat that changed is hashed again).
_VERIFIED: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_MAX_VERIFIED = 1 << 20


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
        # the build's stat digest of each file and its flags (absent from indexes built before them)
        have = "doc_stat" in h["sections"] and "doc_flags" in h["sections"]
        self.stat = sf.array("doc_stat") if have else None
        self.flags = sf.array("doc_flags") if have else None
        self.n_docs = len(self.alias)
        self._check_tables()
        rep = np.where(self.alias < 0, np.arange(self.n_docs), self.alias)
        self._order = np.argsort(rep, kind="stable")
        self._rep_sorted = rep[self._order]
        self.weights = np.bincount(rep, minlength=self.n_docs)  # documents each posting stands for
        self._meta: dict[int, dict] = {}
        self._groups: dict[int, list[int]] = {}
        self._strings: list[str] | None = None

    def _check_tables(self) -> None:
        """Cheap consistency checks, so damage is a clear error instead of a huge allocation."""
        n, bs = self.n_docs, self.bucket_start
        ok = (1 <= self.every <= 1 << 24 and 1 <= self.stride <= 1 << 16 and self.n_buckets >= 1
              and len(bs) == self.n_buckets + 1 and int(bs[0]) == 0 and int(bs[-1]) == len(self.post_fp)
              and len(self.post_doc) == len(self.post_fp) and bool(np.all(bs[1:] >= bs[:-1]))
              and len(self.nchars) == n and len(self.meta_off) == n + 1 and len(self.text_off) == n + 1
              and len(self.ckpt_first) == n + 1 and len(self.capped_cnt) == len(self.capped_idx)
              and (self.stat is None or (len(self.stat) == n and len(self.flags) == n))
              and (len(self.post_doc) == 0 or int(self.post_doc.max()) < n)
              and bool(np.all(self.alias < np.arange(n))) and bool(np.all(self.alias >= -1)))
        if ok and n:
            a = self.alias[self.alias >= 0]
            ok = bool(np.all(self.alias[a] < 0))
        if not ok:
            raise ValueError("segment tables are inconsistent")

    def members(self, d: int) -> list[int]:
        """Document ``d`` and the documents identical to it (its group; the original first)."""
        r = int(self.alias[d])
        if r < 0:
            if self.weights[d] == 1:  # no copies (most documents)
                return [d]
            r = d
        group = self._groups.get(r)  # (not to be changed by the caller)
        if group is None:
            lo, hi = np.searchsorted(self._rep_sorted, [r, r + 1])
            group = self._groups[r] = self._order[lo:hi].tolist()
        return group

    def meta(self, d: int) -> dict:
        """The document table's row ``d``: path, repo, rev, blob, license, license_source,
        license_file and root_path (absent for documents stored in the index)."""
        m = self._meta.get(d)
        if m is None:
            if self._strings is None:
                self._meta_row = self.file.reader("doc_meta")  # (first: another thread may see _strings set)
                self._strings = json.loads(self.file.blob("strings"))
            row = json_row(self._meta_row(int(self.meta_off[d]), int(self.meta_off[d + 1])))
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
        got = self.read_text(d)
        if got is None:
            return None
        text, indexed, stamp = got
        if not indexed:
            if not self.unchanged(d, text):
                return None
            self.remember(d, stamp)
        return text

    def read_text(self, d: int) -> tuple[str, bool, FileStamp | None] | None:
        """The document's text as stored in the index or as its file reads now, whether it is
        known to be the indexed text (stored, or a file read before with the same stat and found
        to be that text: ``_VERIFIED``), and the file's stamp (None when stored); None when the
        file is gone or is not UTF-8 (so not the text indexed). ``unchanged`` checks a file's
        text against the blob hash: the query path does it only for the documents that give a
        match."""
        a, b = int(self.text_off[d]), int(self.text_off[d + 1])
        if b > a:
            return zlib.decompress(self.file.blob("doc_text", a, b)).decode("utf-8", "surrogatepass"), True, None
        p = self.abs_path(d)
        if p is None:
            return self.read_text(int(self.alias[d])) if self.alias[d] >= 0 else None
        try:
            fd = os.open(p, os.O_RDONLY)
            try:  # one read for a regular file (cheaper than open().read())
                st = os.fstat(fd)  # before reading: a write after it changes the stat
                size = st.st_size
                key = stat_key(st)
                settled = st.st_mtime_ns < time.time_ns() - RACY_NS  # (git: "racily clean")
                data = os.read(fd, size + 1)
                if len(data) > size:  # it grew since: the rest too
                    chunks = [data]
                    while chunks[-1]:
                        chunks.append(os.read(fd, 1 << 16))
                    data = b"".join(chunks)
            finally:
                os.close(fd)
            text = data.decode("utf-8", "surrogatepass")
        except (OSError, UnicodeDecodeError):
            return None
        whole = len(data) == size
        known = whole and ((settled and _VERIFIED.get(p) == (key, self.meta(d)["blob"])) or self._built_stat(d, key))
        return text, known, (key, settled and whole)

    def _built_stat(self, d: int, key: tuple[int, int, int, int]) -> bool:
        """Whether the file of document ``d`` has the stat the build recorded (``doc_stat``: its
        digest, recorded only when settled; 0 when unknown), so it is the text indexed."""
        if self.stat is None:
            return False
        want = int(self.stat[d])
        return want != 0 and stat_digest(key) == want

    def exact_flag(self, d: int) -> bool | None:
        """The build's record of whether document ``d``'s normal form changes only whitespace
        (``rawsearch.is_exact`` of its indexed text; None when the index has no ``doc_flags``).
        Valid for a text known to be the one indexed."""
        return None if self.flags is None else bool(int(self.flags[d]) & FLAG_EXACT)

    def stamp_now(self, d: int) -> tuple[int, int, int, int] | None:
        """The stat key of the file ``read_text`` reads for document ``d`` now (None when it
        cannot be stat'ed or the text is stored in the index)."""
        if int(self.text_off[d + 1]) > int(self.text_off[d]):
            return None
        p = self.abs_path(d)
        if p is None:
            return self.stamp_now(int(self.alias[d])) if self.alias[d] >= 0 else None
        try:
            return stat_key(os.stat(p))
        except OSError:
            return None

    def unchanged(self, d: int, text: str) -> bool:
        """Whether ``text`` (a file's, decoded) is the text indexed as document ``d``: its
        blob hash (the text was indexed as its UTF-8 bytes, which decoding gives back)."""
        return blob_hash(text.encode("utf-8", "surrogatepass")) == self.meta(d)["blob"]

    def remember(self, d: int, stamp: FileStamp | None) -> None:
        """Document ``d``'s file, read with ``stamp`` (``read_text``'s), was found to be the
        text indexed: when the stamp is settled, reading the file again with that very stat
        needs no hash (``_VERIFIED``, per process)."""
        if stamp is not None and stamp[1]:
            p = self._file_path(d)
            if p is not None:
                if len(_VERIFIED) >= _MAX_VERIFIED:
                    _VERIFIED.clear()
                _VERIFIED[p] = (stamp[0], self.meta(d)["blob"])

    def _file_path(self, d: int) -> str | None:
        """The path ``read_text`` reads for document ``d`` (its own, or its original's)."""
        p = self.abs_path(d)
        if p is None and self.alias[d] >= 0:
            return self.abs_path(int(self.alias[d]))
        return p

    def region(self, d: int, doc: "DocText | str", lo: int, hi: int, cache: dict | None = None) -> "Region":
        """The normalised text of document ``d`` (its ``DocText`` or raw text) covering at least
        ``[lo, hi)`` (normalised positions, clipped to the document): ``text[k]`` is normalised
        character ``base + k``. Only the raw text between two checkpoints is normalised; ``cache``
        (one document's) keeps each such piece's region for the other hits of the document.
        """
        raw = doc.raw if isinstance(doc, DocText) else doc
        c0, c1 = int(self.ckpt_first[d]), int(self.ckpt_first[d + 1])
        j0 = min(max(lo, 0) // self.every, c1 - c0 - 1)
        j1 = min(max(hi, 0) // self.every + 1, c1 - c0)
        reg = None if cache is None else cache.get((j0, j1))
        if reg is None:
            raw_a = int(self.ckpt[c0 + j0])
            raw_b = int(self.ckpt[c0 + j1]) if j1 < c1 - c0 else len(raw)
            piece = raw[raw_a:raw_b]
            base = j0 * self.every + (1 if piece[:1].isspace() else 0)  # a leading run is dropped
            whole = j0 == 0 and j1 == c1 - c0 and isinstance(doc, DocText)  # kept with the document
            text = doc.whole if whole and doc.whole is not None else normalize(piece)
            if whole:
                doc.whole = text
            reg = Region(base, text, raw_a, piece, raw, self.ckpt[c0:c1], self.every)
            if isinstance(doc, DocText):
                reg.newlines = doc.newlines()
            if cache is not None:
                cache[(j0, j1)] = reg
        return reg

    def locate(self, d: int, doc: DocText, norm: str, qp: int, min_chars: int = 0,
               cache: dict | None = None) -> tuple[int, "Region"] | tuple[None, int] | None:
        """Where query window ``norm[qp:qp + WINDOW]`` is in document ``d``: ``(normalised
        position, region)``, the region holding it with the whole query aligned around it; None
        when it is not there; ``(None, end)`` when (raw search only) it cannot extend to
        ``min_chars`` (nor past query position ``end``). Of several occurrences, the one that
        extends furthest is taken.

        ``doc.exact``: the raw text is ASCII or NFC, so every whitespace-free piece of the normal
        form is verbatim in it. Then the window's longest token is searched in the raw text, each
        occurrence is scored by how far the text around it agrees with the query's, whitespace
        aside (``rawsearch.best_raw``, without normalising anything), and only the checkpoint
        interval around the best is normalised (or, in an ASCII document where that occurrence
        is the only one there, only the text its extension can reach: ``_tight``). Otherwise the
        whole document is normalised. ``cache``: ``region``'s.
        """
        pad = (qp + 2, len(norm) - qp + 2)
        if doc.exact:
            hit = scan_raw(doc.raw, norm, qp, min_chars, doc.occ)
            best = hit.result
            if best is None or isinstance(best, tuple):
                return best
            if best >= 0:
                ck = self.ckpt[int(self.ckpt_first[d]) : int(self.ckpt_first[d + 1])]
                j = bisect_right(ck, best) - 1  # (faster than np.searchsorted for one value)
                lo, hi = j * self.every - WINDOW - 2 - pad[0], (j + 1) * self.every + WINDOW + 2 + pad[1]
                if TIGHT and doc.ascii:
                    got = self._tight(doc, norm, qp, hit, ck, lo, hi)
                    if got is not False:
                        return got
                reg = self.region(d, doc, lo, hi, cache)
                i = _best_in(reg.text, norm, qp, max(0, j * self.every - WINDOW - 2 - reg.base))
                return None if i < 0 else (reg.base + i, reg)
            if FREQUENT and doc.ascii and doc.whole is None and doc.frequent < FREQUENT:
                # a token too frequent to scan: the first FREQUENT times in this document; then its
                # whole normal form is made and kept (cheaper for a document that keeps meeting them)
                doc.frequent += 1
                got = best_frequent(doc.raw, norm, qp)
                if got is None:
                    return None
                if got is not False:
                    w, (ra, rb, text, at_start, at_end) = got
                    return w, Region.tight(doc, ra, rb, text, at_start, at_end)
        reg = self.region(d, doc, 0, int(self.nchars[d]), cache)
        i = _best_in(reg.text, norm, qp, 0)
        return None if i < 0 else (reg.base + i, reg)

    def _tight(self, doc: DocText, norm: str, qp: int, hit: RawHit, ck: np.ndarray, lo: int, hi: int):
        """``locate``'s answer from a small region around ``hit`` (``tight``): ``(position in
        the region, region)`` or None, the same as the checkpoint region ``[lo, hi)`` would give;
        False when that is not sure (another occurrence holds the window in that region, or the
        extension reaches the small region's edge): then the caller takes the checkpoint region."""
        raw = doc.raw
        j0 = min(max(lo, 0) // self.every, len(ck) - 1)
        j1 = min(max(hi, 0) // self.every + 1, len(ck))
        if not sole_holder(raw, norm, qp, hit, int(ck[j0]), int(ck[j1]) if j1 < len(ck) else len(raw)):
            return False
        got = tight_piece(raw, norm, qp, hit)
        if got is None:
            return False
        ra, rb, text, w, at_start, at_end = got
        if text[w : w + WINDOW] != norm[qp : qp + WINDOW]:
            return None  # the only occurrence there holds the window only whitespace aside
        left, right = extension(norm, qp, text, w)
        if reaches_edge(left, right, w, len(text), qp, len(norm), not at_start, not at_end):
            return False
        return w, Region.tight(doc, ra, rb, text, at_start, at_end)

    def lookup(self, qh: np.ndarray):
        """Postings of the query window hashes ``qh``: (query position, document) per posting, and
        per query position the total documents of a capped hash (0 where none is capped)."""
        bkt, fpq = bucket_and_fingerprint(qh, self.n_buckets)
        lo = self.bucket_start[bkt].astype(np.int64)
        lens = self.bucket_start[bkt + 1].astype(np.int64) - lo
        rep = np.repeat(np.arange(len(qh)), lens)
        ent = np.arange(int(lens.sum())) + np.repeat(lo - (np.cumsum(lens) - lens), lens)
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


def _best_in(text: str, norm: str, qp: int, start: int) -> int:
    """Of the (first 16) occurrences of query window ``qp`` in ``text`` from ``start``, the one
    that extends furthest along the query; -1 when there is none."""
    window = norm[qp : qp + WINDOW]
    best, best_i = -1, -1
    i = text.find(window, start)
    for _ in range(16):
        if i < 0:
            break
        ext = _common_len(norm, qp, text, i, False) + _common_len(norm, qp + WINDOW, text, i + WINDOW, True)
        if ext > best:
            best, best_i = ext, i
        i = text.find(window, i + 1)
    return best_i
