"""Read safetensors checkpoints one tensor at a time (single file or sharded with an index).

The safetensors format is an 8-byte little-endian header length, a JSON header mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (relative to the end of the
header), then the raw little-endian data. Each tensor is read with one ``readinto`` into a fresh
numpy buffer: nothing is memory-mapped, so the resident memory of a conversion stays at about
one tensor (``safe_open`` maps the whole shard, and its numpy path cannot return BF16).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


@dataclass(frozen=True)
class TensorRef:
    name: str
    file: Path
    dtype: str  #: safetensors dtype name: F32, F16, BF16, F64
    shape: tuple[int, ...]
    offset: int  #: absolute offset in ``file``
    nbytes: int


def read_header(path: Path) -> dict[str, TensorRef]:
    """The tensors of one safetensors file, without reading their data."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise UserError(f"{path}: not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", raw)
            if n > 100_000_000:
                raise UserError(f"{path}: not a safetensors file (header length {n})")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read safetensors header: {e}") from None
    size = path.stat().st_size
    refs = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise UserError(f"{path}: tensor {name} has dtype {dtype}; only F32, F16, BF16 and F64 can be converted")
        begin, end = info["data_offsets"]
        ref = TensorRef(name, path, dtype, tuple(info["shape"]), 8 + n + begin, end - begin)
        expected = int(np.prod(ref.shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype]).itemsize
        if ref.nbytes != expected or ref.offset + ref.nbytes > size:
            raise UserError(f"{path}: tensor {name} is truncated or inconsistent (file damaged?)")
        refs[name] = ref
    return refs


def checkpoint_tensors(hf_dir: Path) -> dict[str, TensorRef]:
    """All tensors of ``hf_dir`` (``model.safetensors``, or shards listed in the index)."""
    index = hf_dir / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as e:
            raise UserError(f"{index}: not a safetensors index ({e})") from None
        refs: dict[str, TensorRef] = {}
        for shard in sorted(set(weight_map.values())):
            if not (hf_dir / shard).is_file():
                raise UserError(f"{hf_dir}: shard {shard} listed in {INDEX_FILE} is missing")
            refs.update(read_header(hf_dir / shard))
        missing = sorted(set(weight_map) - set(refs))
        if missing:
            raise UserError(f"{hf_dir}: tensors listed in {INDEX_FILE} are not in the shards: {', '.join(missing[:3])}")
        return refs
    if (hf_dir / SINGLE_FILE).is_file():
        return read_header(hf_dir / SINGLE_FILE)
    raise UserError(f"{hf_dir}: no {SINGLE_FILE} or {INDEX_FILE} (only safetensors checkpoints can be converted)")


def load_f32(ref: TensorRef) -> np.ndarray:
    """The tensor's data as a float32 array of its shape."""
    raw = np.empty(ref.nbytes, dtype=np.uint8)
    try:
        with open(ref.file, "rb") as f:
            f.seek(ref.offset)
            n = f.readinto(memoryview(raw))
    except OSError as e:
        raise UserError(f"{ref.file}: cannot read tensor {ref.name}: {e}") from None
    if n != ref.nbytes:
        raise UserError(f"{ref.file}: tensor {ref.name} is truncated")
    arr = raw.view(_DTYPES[ref.dtype])
    if ref.dtype == "BF16":  # bfloat16 is the top half of a float32
        out = np.empty(arr.shape, dtype=np.uint32)
        np.left_shift(arr, 16, out=out, dtype=np.uint32)
        del raw, arr
        return out.view(np.float32).reshape(ref.shape)
    return arr.astype(np.float32, copy=False).reshape(ref.shape)
