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

#: How many occurrences of a window's longest token ``locate`` scores before it normalises the
#: whole document instead, and how much of the query around the window they are scored on.
MAX_SEEN = 256
CONTEXT = 256
#: ... and how many occurrences that hold the window (whitespace aside) it compares at most.
MAX_SCORED = 16


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

    def locate(self, d: int, raw: str, norm: str, qp: int, exact: bool,
               min_chars: int = 0) -> tuple[int, "Region"] | tuple[None, int] | None:
        """Where query window ``norm[qp:qp + WINDOW]`` is in document ``d``: ``(normalised
        position, region)``, the region holding it with the whole query aligned around it; None
        when it is not there; ``(None, end)`` when (raw search only) it cannot extend to
        ``min_chars`` (nor past query position ``end``). Of several occurrences, the one that
        extends furthest is taken.

        ``exact``: the raw text is ASCII or NFC, so every whitespace-free piece of the normal form
        is verbatim in it. Then the window's longest token is searched in the raw text, each
        occurrence is scored by how far the text around it agrees with the query's, whitespace
        aside (without normalising anything), and only the checkpoint interval around the best
        is normalised. Otherwise the whole document is normalised.
        """
        window = norm[qp : qp + WINDOW]
        pad = (qp + 2, len(norm) - qp + 2)
        if exact:
            best = _best_raw(raw, norm, qp, min_chars)
            if best is None or isinstance(best, tuple):
                return best
            if best >= 0:
                ck = self.ckpt[int(self.ckpt_first[d]) : int(self.ckpt_first[d + 1])]
                j = int(np.searchsorted(ck, best, side="right")) - 1
                reg = self.region(d, raw, j * self.every - WINDOW - 2 - pad[0],
                                  (j + 1) * self.every + WINDOW + 2 + pad[1])
                i = _best_in(reg.text, norm, qp, max(0, j * self.every - WINDOW - 2 - reg.base))
                return None if i < 0 else (reg.base + i, reg)
        reg = self.region(d, raw, 0, int(self.nchars[d]))
        i = _best_in(reg.text, norm, qp, 0)
        return None if i < 0 else (reg.base + i, reg)

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


def _flat_before(text: str, p: int, m: int) -> str:
    """The last ``m`` (or all) non-whitespace characters of ``text[:p]``, whitespace removed."""
    size = 2 * m + 64
    while True:
        flat = "".join(text[max(0, p - size) : p].split())
        if len(flat) >= m or size >= p:
            return flat[-m:] if m else ""
        size *= 4


def _flat_after(text: str, p: int, m: int) -> str:
    """The first ``m`` (or all) non-whitespace characters of ``text[p:]``, whitespace removed."""
    size = 2 * m + 64
    while True:
        flat = "".join(text[p : p + size].split())
        if len(flat) >= m or p + size >= len(text):
            return flat[:m]
        size *= 4


def _best_raw(raw: str, norm: str, qp: int, min_chars: int = 0) -> int | tuple[None, int] | None:
    """Raw position of the longest token of query window ``qp`` at the occurrence whose
    surroundings agree furthest with the query's, whitespace aside (at least the whole window);
    None when there is none, ``(None, end)`` when no occurrence can give a span of ``min_chars``
    (the query agrees with them, whitespace aside, up to ``end`` at most), -1 when the token is
    too frequent to try every occurrence."""
    window = norm[qp : qp + WINDOW]
    toks = window.split()
    t = max(range(len(toks)), key=lambda i: len(toks[i]))
    k = 0  # where token t starts in the window
    for i in range(t + 1):
        k = window.index(toks[i], k) + (len(toks[i]) if i < t else 0)
    tok = toks[t]
    q_before = "".join(norm[max(0, qp - CONTEXT) : qp + k].split())
    q_after = "".join(norm[qp + k + len(tok) : qp + WINDOW + CONTEXT].split())
    win_b, win_a = "".join(toks[:t]), "".join(toks[t + 1 :])
    need_b, need_a = len(win_b), len(win_a)
    best, best_p, seen, scored, reach = -1, None, 0, 0, (0, 0)
    p = raw.find(tok)
    while p >= 0:
        seen += 1
        if seen > MAX_SEEN:
            return -1
        if scored >= MAX_SCORED:
            break
        e = p + len(tok)
        if (_flat_before(raw, p, need_b) == win_b and _flat_after(raw, e, need_a) == win_a
                and (len(q_before) + len(q_after) > best)):  # the window is here, whitespace aside
            scored += 1
            rb = _flat_before(raw, p, len(q_before))
            sb = _common_len(q_before, len(q_before), rb, len(rb), False)
            sa = _common_len(q_after, 0, _flat_after(raw, e, len(q_after)), 0, True)
            reach = (max(reach[0], sb), max(reach[1], sa))
            if sb + sa > best:
                best, best_p = sb + sa, p
                if sb == len(q_before) and sa == len(q_after):
                    break
        p = raw.find(tok, p + 1)
    if best_p is not None and min_chars > WINDOW and scored < MAX_SCORED:
        # a span from any occurrence lies within the query characters that agree with the text
        # around some occurrence, whitespace aside (and starts and ends on a non-blank): when
        # that is shorter than min_chars, nothing can be reported here
        a, b = _unflat_back(norm, qp + k, reach[0]), _unflat_fwd(norm, qp + k + len(tok), reach[1])
        if b - a < min_chars:
            return None, b
    return best_p


def _unflat_back(text: str, end: int, n: int) -> int:
    """Where, going back from ``end``, ``n`` non-blank characters of ``text`` start."""
    i = end
    while n > 0 and i > 0:
        i -= 1
        n -= not text[i].isspace()
    return i


def _unflat_fwd(text: str, start: int, n: int) -> int:
    """Where, going on from ``start``, ``n`` non-blank characters of ``text`` end."""
    i = start
    while n > 0 and i < len(text):
        n -= not text[i].isspace()
        i += 1
    return i


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


def _common_len(a: str, i: int, b: str, j: int, forward: bool) -> int:
    """Length of the common prefix of a[i:], b[j:] (forward) or common suffix of a[:i], b[:j]."""
    n = min(len(a) - i, len(b) - j) if forward else min(i, j)

    def same(lo: int, k: int) -> bool:
        if forward:
            return a[i + lo : i + lo + k] == b[j + lo : j + lo + k]
        return a[i - lo - k : i - lo] == b[j - lo - k : j - lo]

    length, step = 0, 32
    while True:
        k = min(step, n - length)
        if k <= 0:
            return length
        if same(length, k):
            length += k
            step *= 2
            continue
        lo, hi = 0, k
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if same(length, mid):
                lo = mid
            else:
                hi = mid
        return length + lo


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
