"""A cheap sanity check of a GGUF file before llama.cpp gets it (called before every model load).

``check_gguf(path)`` reads only the header (magic, version, key/value metadata, tensor table)
through a memory map, never the tensor data, and checks that the file is long enough for every
tensor the table describes. A truncated download, an HTML error page saved as ``.gguf``, a Git
LFS pointer, a safetensors checkpoint or a model of another architecture each get one clear
``UserError`` instead of a llama.cpp crash or an opaque load failure. Reading the header of a
StarCoder2 GGUF (49k-token vocabulary, ~500 tensors) takes a few tens of milliseconds, whatever
the file size.

GGUF layout (ggml's ``docs/gguf.md``; little-endian): ``b"GGUF"``, uint32 version, uint64 tensor
count, uint64 key/value count, the key/values (string key, uint32 type, value), then per tensor:
name, uint32 n_dims, uint64 dims, uint32 ggml type, uint64 offset. Tensor data starts at the next
multiple of ``general.alignment`` (default 32) and each tensor's bytes are offset + size.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  #: llama.cpp reads GGUF v2 and v3
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 8
MAX_ARRAY_DEPTH = 8  #: arrays of arrays: GGUF files nest one level at most; deeper is damage

#: value type -> struct format of fixed-size scalars (8 = string and 9 = array are variable)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")

#: ggml tensor type -> (elements per block, bytes per block), as in gguf-py's GGML_QUANT_SIZES
GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 40),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    version: int
    arch: str | None
    type: str  #: general.type: "model" (default) or "adapter"
    n_tensors: int
    n_kv: int
    alignment: int
    data_offset: int  #: where tensor data starts
    data_end: int  #: end of the last tensor's data: the file must be at least this long
    file_size: int
    metadata: dict = field(repr=False)  #: scalar and string values; arrays as ("array", n_items)
    unknown_tensor_types: tuple[int, ...] = ()

    @property
    def context_length(self) -> int | None:
        v = self.metadata.get(f"{self.arch}.context_length")
        return v if isinstance(v, int) else None


class GGUFError(ValueError):
    """The file is not a readable GGUF; the message says why (without the path)."""


class _Truncated(Exception):
    def __init__(self, needed: int):
        self.needed = needed


class _Reader:
    def __init__(self, buf, size: int):
        self.buf, self.size, self.pos = buf, size, 0

    def need(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Truncated(start + max(n, 0))
        self.pos = start + n
        return start

    def unpack(self, fmt: str, n: int):
        return struct.unpack_from(fmt, self.buf, self.need(n))[0]

    def u32(self) -> int:
        return self.unpack("<I", 4)

    def u64(self) -> int:
        return self.unpack("<Q", 8)

    def string(self, what: str) -> str:
        n = self.u64()
        if n > self.size:
            raise GGUFError(f"corrupt header: {what} claims a {n}-byte string at offset {self.pos - 8}")
        start = self.need(n)
        try:
            return bytes(self.buf[start:start + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"corrupt header: {what} at offset {start} is not UTF-8") from None

    def value(self, vtype: int, key: str):
        if vtype in _SCALAR:
            fmt = _SCALAR[vtype]
            return self.unpack(fmt, struct.calcsize(fmt))
        if vtype == _STRING:
            return self.string(f"value of {key}")
        if vtype == _ARRAY:
            itype, count = self.u32(), self.u64()
            self.skip_array(itype, count, key)
            return ("array", count)
        raise GGUFError(f"corrupt header: key {key!r} has unknown value type {vtype}")

    def skip_array(self, itype: int, count: int, key: str, depth: int = 0) -> None:
        if depth > MAX_ARRAY_DEPTH:
            raise GGUFError(f"corrupt header: array {key!r} is nested more than {MAX_ARRAY_DEPTH} deep")
        if itype in _SCALAR:
            self.need(count * struct.calcsize(_SCALAR[itype]))
        elif itype == _STRING:
            if count > self.size:
                raise _Truncated(self.pos + count * 8)
            unpack, buf, size, pos = _U64.unpack_from, self.buf, self.size, self.pos
            for _ in range(count):  # the hot loop (49k tokens, 49k merges): kept inline
                if pos + 8 > size:
                    raise _Truncated(pos + 8)
                pos += 8 + unpack(buf, pos)[0]
            if pos > size:
                raise _Truncated(pos)
            self.pos = pos
        elif itype == _ARRAY:
            if count > self.size:
                raise _Truncated(self.pos + count * 12)
            for _ in range(count):
                self.skip_array(self.u32(), self.u64(), key, depth + 1)
        else:
            raise GGUFError(f"corrupt header: array {key!r} has unknown item type {itype}")


def _not_gguf_reason(head: bytes) -> str:
    if head.startswith(b"version https://git-lfs"):
        return "is a Git LFS pointer file, not the model itself (fetch it with git lfs or `sc2lsp models pull`)"
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return "is an HTML/XML page, not a model (an error page saved by a failed download?)"
    if stripped[:1] in (b"{", b"["):
        return "is a JSON document, not a model"
    if head[:4] in (b"ggjt", b"ggml", b"ggmf", b"tjgg", b"lmgg", b"fmgg"):
        return "is an old GGML file (before GGUF); convert the original checkpoint again"
    if len(head) >= 10 and head[8:10] == b'{"':
        return "is a safetensors checkpoint, not a GGUF; convert it with `sc2lsp models convert`"
    if head[:4] == b"PK\x03\x04":
        return "is a zip archive (a PyTorch .bin checkpoint?), not a GGUF"
    return f"is not a GGUF file (it starts with {head[:8]!r}, expected b'GGUF')"


def read_gguf_header(path: str | Path) -> GGUFInfo:
    """Parse the header of ``path``; GGUFError (or _Truncated internally) for unreadable files."""
    path = Path(path)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise GGUFError("is empty (0 bytes)")
        f.seek(0)
        head = f.read(64)
        if head[:4] != MAGIC:
            raise GGUFError(_not_gguf_reason(head))
        if size < 24:
            raise _Truncated(24)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(path, buf, size)


def _parse(path: Path, buf, size: int) -> GGUFInfo:
    r = _Reader(buf, size)
    r.need(4)
    version = r.u32()
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped in SUPPORTED_VERSIONS:
            raise GGUFError(f"is a big-endian GGUF (version {swapped}); llama.cpp here reads little-endian files")
        known = " and ".join(map(str, SUPPORTED_VERSIONS))
        raise GGUFError(f"has GGUF version {version}; llama.cpp reads versions {known}")
    n_tensors, n_kv = r.u64(), r.u64()
    if n_tensors > size // 16 or n_kv > size // 16:
        raise GGUFError(f"corrupt header: {n_tensors} tensors and {n_kv} keys cannot fit in {size} bytes")
    meta: dict = {}
    for i in range(n_kv):
        key = r.string(f"key #{i}")
        meta[key] = r.value(r.u32(), key)
    alignment = meta.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"corrupt header: general.alignment = {alignment!r} is not a power of two")
    tensors = []
    for i in range(n_tensors):
        name = r.string(f"tensor #{i} name")
        n_dims = r.u32()
        if n_dims > MAX_DIMS:
            raise GGUFError(f"corrupt header: tensor {name!r} has {n_dims} dimensions")
        dims = struct.unpack_from(f"<{n_dims}Q", buf, r.need(8 * n_dims))
        ttype, offset = r.u32(), r.u64()
        tensors.append((name, dims, ttype, offset))
    data_offset = -(-r.pos // alignment) * alignment
    data_end, unknown = data_offset, set()
    for name, dims, ttype, offset in tensors:
        block = GGML_BLOCKS.get(ttype) or _gguf_py_block(ttype)
        if block is None:
            unknown.add(ttype)
            continue
        n = 1
        for d in dims:
            n *= d
        per, nbytes = block
        if dims and dims[0] % per:
            raise GGUFError(f"corrupt header: tensor {name!r} row of {dims[0]} is not a multiple "
                            f"of its block size {per}")
        data_end = max(data_end, data_offset + offset + n // per * nbytes)
    arch = meta.get("general.architecture")
    return GGUFInfo(
        path=path, version=version, arch=arch if isinstance(arch, str) else None,
        type=meta.get("general.type", "model") if isinstance(meta.get("general.type"), str) else "model",
        n_tensors=n_tensors, n_kv=n_kv, alignment=alignment, data_offset=data_offset, data_end=data_end,
        file_size=size, metadata=meta, unknown_tensor_types=tuple(sorted(unknown)),
    )


def _gguf_py_block(ttype: int) -> tuple[int, int] | None:
    """Block sizes of tensor types newer than the table above, from gguf-py if it knows them."""
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        return tuple(GGML_QUANT_SIZES[GGMLQuantizationType(ttype)])
    except (ImportError, ValueError, KeyError):
        return None


def _pull_hint(path: Path) -> str:
    """How to get a good copy of ``path``: `sc2lsp models pull NAME` when the registry knows it."""
    try:
        from .registry import load_registry

        reg = load_registry()
    except Exception:  # the hint is best-effort; the error it decorates matters more
        reg = None
    if reg is not None:
        m = re.search(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\][^/\\]+[/\\](.+)$", str(path))
        for entry in reg.models.values():
            for q in entry.quants.values():
                if q.path is not None:
                    try:
                        if q.path.exists() and q.path.samefile(path):
                            return f"restore or rebuild {q.path} (model {entry.name})"
                    except OSError:
                        pass
                elif m and entry.repo == f"{m.group(1)}/{m.group(2)}" and q.file == m.group(3).replace("\\", "/"):
                    return f"run `{entry.pull_command(q)}` again"
    return "download or convert it again (`sc2lsp models pull NAME` for registry models)"


def check_gguf(path: str | Path, *, arch: str | None = "starcoder2", adapter: bool = False,
               label: str | None = None, hint: str | None = None) -> GGUFInfo:
    """Validate ``path`` as a GGUF llama.cpp can load; UserError with the reason and a remedy if not.

    ``arch``: required ``general.architecture`` (None accepts any). ``adapter``: expect a LoRA
    adapter (``general.type = adapter``) instead of a model. ``label`` names the file in messages
    (default: its path); ``hint`` is the remedy for a damaged file (default: how to download it
    again, found through the registry; "" for none).
    """
    path = Path(path)
    name = label or str(path)
    if not path.exists():
        raise UserError(f"model file not found: {name}")
    if not path.is_file():
        raise UserError(f"{name} is not a file (expected a .gguf model)")

    def damaged(problem: str) -> UserError:
        remedy = _pull_hint(path) if hint is None else hint
        return UserError(f"{problem}; {remedy}" if remedy else problem)

    try:
        info = read_gguf_header(path)
    except _Truncated as t:
        size = path.stat().st_size
        raise damaged(f"truncated GGUF {name}: its header needs at least {t.needed} bytes, file has {size}") from None
    except GGUFError as e:
        raise damaged(f"{name} {e}") from None
    except OSError as e:
        raise UserError(f"cannot read {name}: {e.strerror or e}") from None
    except (ValueError, struct.error, OverflowError, RecursionError, MemoryError, KeyError, TypeError) as e:
        raise damaged(f"{name} has a damaged GGUF header ({type(e).__name__})") from None
    if info.data_end > info.file_size:
        raise damaged(f"truncated GGUF {name}: expected {info.data_end} bytes, file has {info.file_size}")
    if info.arch is None:
        raise UserError(f"{name} has no general.architecture; it is not a model GGUF llama.cpp can load")
    if arch is not None and info.arch != arch:
        raise UserError(f"{name} is a {info.arch!r} model; sc2lsp serves {arch} models (general.architecture = {arch})")
    if adapter and info.type != "adapter":
        raise UserError(f"{name} is a {info.type}, not a LoRA adapter (general.type = adapter)")
    if not adapter and info.type == "adapter":
        raise UserError(f"{name} is a LoRA adapter, not a model; load it on top of its base model")
    if not adapter and info.n_tensors == 0:
        raise UserError(f"{name} contains no tensors (a vocabulary-only GGUF?); it cannot be served")
    return info
