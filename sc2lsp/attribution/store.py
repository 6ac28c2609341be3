"""The on-disk index: a directory with ``manifest.json`` and immutable segment files.

A segment file is one container: ``MAGIC`` (8 bytes), format version (u32), header length
(u32), a JSON header (parameters, roots, a table of sections), 64-byte aligned numpy sections,
and a footer ``END_MAGIC`` + total length (u64) so a truncated file is recognised at once. The
sections are opened with ``mmap`` and ``np.frombuffer`` (nothing is read until used).

Every write is atomic (``sc2lsp.fileio.atomic_write``: a unique temporary file, fsync, rename,
fsync the directory). A new
segment becomes visible only when the manifest that names it has been replaced, so a reader
sees the old index or the new one, never half of one. The layout of the sections is
described in docs/attribution.md.
"""

from __future__ import annotations

import json
import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write

FORMAT_VERSION = 2
MAGIC = b"SC2ATTR\x00"
END_MAGIC = b"SC2AEND\x00"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "sc2lsp-attribution-index"
_ALIGN = 64
_REBUILD = "rebuild it with `sc2lsp attribution build CORPUS... --out INDEX`"
#: A segment's file name: no separators, no "..", so a manifest can never point outside its index.
SEGMENT_NAME = re.compile(r"seg-[A-Za-z0-9_-]{1,120}\.sc2a")
_SCAN = json.JSONDecoder().scan_once  # (the scanner of json.loads' default decoder)


def is_segment_name(name: object) -> bool:
    return isinstance(name, str) and SEGMENT_NAME.fullmatch(name) is not None


def write_segment(path: Path, header: dict[str, Any], sections: dict[str, np.ndarray | bytes]) -> int:
    """Write one segment file atomically; returns its size in bytes."""
    table: dict[str, list] = {}
    blobs: list[tuple[int, bytes | np.ndarray]] = []
    # first pass: lay out sections after a header of a size we do not know yet
    order = list(sections.items())

    def layout(start: int) -> int:
        pos = start
        table.clear()
        blobs.clear()
        for name, data in order:
            pos = (pos + _ALIGN - 1) // _ALIGN * _ALIGN
            if isinstance(data, np.ndarray):
                arr = np.ascontiguousarray(data)
                table[name] = [pos, arr.dtype.str, int(arr.size)]
                blobs.append((pos, arr))
                pos += arr.nbytes
            else:
                table[name] = [pos, "bytes", len(data)]
                blobs.append((pos, data))
                pos += len(data)
        return pos

    start = 16
    while True:
        end = layout(start)
        head = json.dumps({**header, "sections": table}, separators=(",", ":")).encode()
        if 16 + len(head) <= start:
            break
        start = 16 + len(head) + 256  # room for the section offsets growing the header
    total = end + 16

    def write(f) -> None:
        f.write(MAGIC + struct.pack("<II", FORMAT_VERSION, len(head)) + head)
        for pos, data in blobs:
            f.write(b"\x00" * (pos - f.tell()))
            f.write(data.tobytes() if isinstance(data, np.ndarray) else data)
        f.write(END_MAGIC + struct.pack("<Q", total))

    atomic_write(path, write)
    return total


@dataclass
class SegmentFile:
    path: Path
    header: dict[str, Any]
    size: int
    _mm: mmap.mmap

    def array(self, name: str) -> np.ndarray:
        off, dtype, count = self.header["sections"][name]
        return np.frombuffer(self._mm, dtype=np.dtype(dtype), count=count, offset=off)

    def blob(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        off, _, count = self.header["sections"][name]
        end = count if end is None else end
        return self._mm[off + start : off + end]

    def reader(self, name: str):
        """``blob(name, start, end)`` as a function of (start, end), for many small reads of one
        section (its offset looked up once)."""
        off = self.header["sections"][name][0]
        mm = self._mm
        return lambda start, end: mm[off + start : off + end]


def json_row(raw: bytes):
    """``json.loads(raw)`` of a document table's row, without that call's own overhead (most of
    the time of a row this small): the same scanner on the UTF-8 text; anything else (leading or
    trailing data, another encoding, damage) goes to ``json.loads``."""
    try:
        text = raw.decode("utf-8", "surrogatepass")
        row, end = _SCAN(text, 0)
        if end == len(text):
            return row
    except (StopIteration, ValueError):
        pass
    return json.loads(raw)


def open_segment(path: Path) -> SegmentFile:
    """Open and check one segment (magic, version, footer, section bounds)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        f = open(path, "rb")
    except OSError as e:
        raise UserError(f"attribution index segment {path} cannot be read ({e.strerror}); {_REBUILD}") from e
    with f:
        head = f.read(16)
        if len(head) < 16 or head[:8] != MAGIC:
            raise UserError(f"{path} is not an sc2lsp attribution segment; {_REBUILD}")
        version, hlen = struct.unpack("<II", head[8:])
        if version != FORMAT_VERSION:
            raise UserError(f"{path} has index format version {version}, this sc2lsp reads version "
                            f"{FORMAT_VERSION}; {_REBUILD}")
        if size < 32 + hlen:
            raise UserError(f"{path} is truncated ({size} bytes); {_REBUILD}")
        f.seek(size - 16)
        tail = f.read(16)
        if tail[:8] != END_MAGIC or struct.unpack("<Q", tail[8:])[0] != size:
            raise UserError(f"{path} is truncated or damaged (no valid footer); {_REBUILD}")
        f.seek(16)
        try:
            header = json.loads(f.read(hlen))
        except ValueError as e:
            raise UserError(f"{path} has a damaged header; {_REBUILD}") from e
        for name, (off, dtype, count) in header.get("sections", {}).items():
            nbytes = count if dtype == "bytes" else count * np.dtype(dtype).itemsize
            if off + nbytes > size - 16:
                raise UserError(f"{path}: section {name} runs past the end of the file; {_REBUILD}")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return SegmentFile(path, header, size, mm)


def read_manifest(index_dir: Path) -> dict[str, Any]:
    index_dir = Path(index_dir)
    p = index_dir / MANIFEST
    if not index_dir.exists():
        raise UserError(f"attribution index {index_dir} does not exist; build one with "
                        "`sc2lsp attribution build CORPUS... --out INDEX`")
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UserError(f"{index_dir} is not an attribution index (no {MANIFEST}); {_REBUILD}") from e
    except (OSError, ValueError) as e:
        raise UserError(f"{p} cannot be read or is not valid JSON; {_REBUILD}") from e
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{p} is not an sc2lsp attribution manifest; {_REBUILD}")
    if m.get("version") != FORMAT_VERSION:
        raise UserError(f"{index_dir} has index format version {m.get('version')}, this sc2lsp reads "
                        f"version {FORMAT_VERSION}; {_REBUILD}")
    segs = m.get("segments", [])
    if not isinstance(segs, list) or not all(isinstance(x, dict) and is_segment_name(x.get("file")) for x in segs):
        bad = next((x.get("file") if isinstance(x, dict) else x for x in segs), segs) if isinstance(segs, list) else segs
        raise UserError(f"{p} names a segment that is not a seg-*.sc2a file in the index ({str(bad)[:80]!r}); "
                        f"{_REBUILD}")
    return m


def write_manifest(index_dir: Path, manifest: dict[str, Any]) -> None:
    data = json.dumps({**manifest, "format": MANIFEST_FORMAT, "version": FORMAT_VERSION}, indent=1).encode()
    atomic_write(Path(index_dir) / MANIFEST, lambda f: f.write(data))
