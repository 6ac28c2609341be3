"""Window hashes, postings buckets and fingerprints (numpy, deterministic, no I/O).

A window is ``WINDOW`` consecutive characters of normalised text. Its hash is a polynomial
over the code points modulo 2**64 (base ``BASE``), finished with murmur3's ``fmix64`` so every
bit is usable: the top 32 bits pick a postings bucket, the low ``FP_BITS`` are the posting's
fingerprint. All windows of a text are hashed at once in O(n) with prefix
sums: ``S[k] = sum(c[t] * BASE**-t)`` so ``hash(i) = (S[i+w] - S[i]) * BASE**(i+w-1)``
(uint64 arithmetic wraps, which is exactly mod 2**64; BASE is odd, hence invertible).
"""

from __future__ import annotations

import numpy as np

#: Window width; with the default stride of ``GUARANTEE - WINDOW + 1`` = 37, every common substring of
#: ``GUARANTEE`` normalised characters contains an indexed window.
WINDOW = 38
GUARANTEE = 74
FP_BITS = 16
HASH_NAME = "poly64-fmix-1"
BASE = 0x9E3779B97F4A7C15
BASE_INV = pow(BASE, -1, 2**64)
_M = (1 << 64) - 1

_pow: np.ndarray = np.ones(1, dtype=np.uint64)
_pow_inv: np.ndarray = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**k and BASE**-k (mod 2**64) for k < n, cached and grown by doubling."""
    global _pow, _pow_inv
    if len(_pow) < n:
        size = max(n, 2 * len(_pow), 1 << 16)
        with np.errstate(over="ignore"):
            a = np.full(size, BASE, dtype=np.uint64)
            a[0] = 1
            b = np.full(size, BASE_INV, dtype=np.uint64)
            b[0] = 1
            _pow, _pow_inv = np.cumprod(a, dtype=np.uint64), np.cumprod(b, dtype=np.uint64)
    return _pow, _pow_inv


def codepoints(text: str) -> np.ndarray:
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.uint64)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)


def fmix64(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xC4CEB9FE1A85EC53)
        x ^= x >> np.uint64(33)
    return x


def window_hashes(text: str, stride: int = 1, width: int = WINDOW) -> np.ndarray:
    """Hashes of the windows starting at 0, stride, 2*stride, ... (each fully inside ``text``)."""
    n = len(text)
    if n < width:
        return np.zeros(0, dtype=np.uint64)
    c = codepoints(text)
    p, pinv = _powers(n + 1)
    with np.errstate(over="ignore"):
        s = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(c * pinv[:n], dtype=np.uint64, out=s[1:])
        i = np.arange(0, n - width + 1, stride)
        h = (s[i + width] - s[i]) * p[i + width - 1]
    return fmix64(h)


def window_hash_reference(window: str) -> int:
    """The same hash in plain Python, one window (for tests)."""
    h = 0
    for ch in window:
        h = (h * BASE + ord(ch)) & _M
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M
    h ^= h >> 33
    return h


def bucket_and_fingerprint(h: np.ndarray, n_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Postings bucket (from the top 32 bits, by multiply-shift, so ``n_buckets`` need not be a
    power of two and hash order is bucket order) and ``FP_BITS``-bit fingerprint (the low bits)."""
    with np.errstate(over="ignore"):
        bucket = ((h >> np.uint64(32)) * np.uint64(n_buckets)) >> np.uint64(32)
    fp = h & np.uint64((1 << FP_BITS) - 1)
    return bucket.astype(np.int64), fp.astype(np.uint16)
