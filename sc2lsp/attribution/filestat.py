"""A corpus file's stat, as the build records it and a query compares it (git's approach; no numpy).

A file read by a query must be checked against its indexed blob (SHA-1 of the whole file) before
its matches count as verified. Git avoids hashing a file whose stat is the one its index
recorded; so does the query path: the build records each corpus file's stat key (size,
mtime_ns, inode, ctime_ns) in the document table as a 64-bit digest (``doc_stat``), and a query
that reads the file with the very same stat takes it as its blob without hashing it. Only a
stat that is settled is recorded: a file whose mtime or ctime is less than ``RACY_NS`` before its
text was read (git's "racily clean" rule: it could change again within the same timestamp) gets
0, "unknown", and is hashed as before. ``ctime`` cannot be set back (``os.utime`` sets it to
now), so an edit that puts size and mtime back is still seen.
"""

from __future__ import annotations

import hashlib
import os
import struct

RACY_NS = 2_000_000_000

StatKey = tuple[int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    """(size, mtime_ns, inode, ctime_ns) of a stat result."""
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def stat_digest(key: StatKey) -> int:
    """The 64-bit digest of a stat key that ``doc_stat`` stores (never 0: 0 means unknown)."""
    packed = struct.pack("<QqQq", key[0] & (2**64 - 1), key[1], key[2] & (2**64 - 1), key[3])
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "little") or 1


def settled_digest(path: str, size: int, read_after_ns: int | None) -> int:
    """``doc_stat`` of the file ``path`` whose text (``size`` bytes) was read after the time
    ``read_after_ns`` (``time.time_ns()``): its stat digest when the file has that size and its
    mtime and ctime are at least ``RACY_NS`` older than that time (so a write after that time, or
    during the read, shows in the stat), else 0."""
    if read_after_ns is None:
        return 0
    try:
        st = os.stat(path)
    except OSError:
        return 0
    limit = read_after_ns - RACY_NS
    if st.st_size != size or st.st_mtime_ns >= limit or st.st_ctime_ns >= limit:
        return 0
    return stat_digest(stat_key(st))
