"""Exact and near deduplication of files (bigcode-dataset recipe: MinHash over 5-grams, Jaccard 0.7).

``dedup(files)`` returns, for each dropped path, why (``"exact duplicate of X"`` or
``"near duplicate of X (Jaccard ~0.83)"``). The first file (in the given order) of each group is
kept. Exact duplicates compare whitespace-normalised text; near duplicates are found through
MinHash LSH (datasketch) on word 5-grams with 256 permutations, and each candidate is confirmed
against the estimated Jaccard similarity before it is dropped.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

NGRAM = 5
NUM_PERM = 256
THRESHOLD = 0.7
_WORD = re.compile(r"[A-Za-z0-9_]+")


def _normalise(text: str) -> str:
    return " ".join(text.split())


def shingles(text: str, n: int = NGRAM) -> set[bytes]:
    """Word ``n``-grams (words = alphanumeric runs), as the bigcode near-dedup script uses."""
    words = _WORD.findall(text)
    if len(words) < n:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


def minhash(text: str, num_perm: int = NUM_PERM, seed: int = 1):
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, seed=seed)
    m.update_batch(list(shingles(text)))
    return m


def dedup(
    files: Sequence[tuple[str, str]],
    *,
    threshold: float = THRESHOLD,
    num_perm: int = NUM_PERM,
    progress: bool = False,
) -> dict[str, str]:
    """``{path: reason}`` for the files to drop; every other path is kept."""
    from datasketch import MinHashLSH

    dropped: dict[str, str] = {}
    first_by_hash: dict[str, str] = {}
    unique: list[tuple[str, str]] = []
    for path, text in files:
        h = hashlib.sha256(_normalise(text).encode()).hexdigest()
        if h in first_by_hash:
            dropped[path] = f"exact duplicate of {first_by_hash[h]}"
        else:
            first_by_hash[h] = path
            unique.append((path, text))

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes = {}
    items = unique
    if progress:
        from tqdm import tqdm

        items = tqdm(unique, desc="near-dedup", unit="file", leave=False)
    for path, text in items:
        if len(_WORD.findall(text)) < NGRAM:
            continue  # too short for 5-grams: exact dedup only
        m = minhash(text, num_perm)
        best = None
        for other in lsh.query(m):
            j = m.jaccard(hashes[other])
            if j >= threshold and (best is None or j > best[1]):
                best = (other, j)
        if best:
            dropped[path] = f"near duplicate of {best[0]} (Jaccard ~{best[1]:.2f})"
            continue
        lsh.insert(path, m)
        hashes[path] = m
    return dropped
