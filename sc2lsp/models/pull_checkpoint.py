"""``sc2lsp models pull NAME --checkpoint``: a model's safetensors checkpoint (``hf_repo`` in
models.toml) into the normal Hugging Face cache, for fine-tuning (``sc2lsp tune``).

1. The file list of ``hf_repo`` at ``hf_revision`` comes from the hub's tree API (what
   ``snapshot_download`` lists), filtered by ``CHECKPOINT_PATTERNS`` (weights, config, tokenizer).
2. Each file not yet in the cache is fetched the way ``models pull`` fetches a GGUF (``pull.download``):
   into ``blobs/<etag>.sc2lsp-partial``, which survives an interruption, so the next pull resumes
   at its end (huggingface_hub alone would start a file over); size and, for LFS files, sha256
   are checked before it becomes ``blobs/<etag>``; safetensors headers are checked too.
3. ``snapshot_download`` with the same patterns then finds every blob and writes the snapshot
   links and the ref, so ``registry.hf_checkpoint(NAME)`` (and every HF tool) finds the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .registry import CHECKPOINT_PATTERNS, ModelEntry, Quant, Registry, cached_checkpoint, checkpoint_problem, load_registry


@dataclasses.dataclass(frozen=True)
class _CheckpointEntry(ModelEntry):
    """The entry seen as its checkpoint repository, so ``pull``'s messages name the right command."""

    def pull_command(self, quant: Quant) -> str:
        return f"sc2lsp models pull {self.name} --checkpoint"


def _as_checkpoint(entry: ModelEntry) -> _CheckpointEntry:
    values = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}
    values.update(repo=entry.hf_repo, revision=entry.hf_revision)
    return _CheckpointEntry(**values)


def check_safetensors(path: Path, label: str) -> None:
    """A cheap check of a safetensors file: header length, JSON header, data offsets within the file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UserError(f"{label} is not a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 << 20:
            raise UserError(f"{label} is not a safetensors file (header length {n}, file {size} bytes)")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise UserError(f"{label}: unreadable safetensors header") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise UserError(f"{label}: truncated or padded safetensors file (expected {8 + n + end} bytes, has {size})")


def list_files(entry: _CheckpointEntry) -> tuple[str, list]:
    """(commit, [RepoFile]) of the checkpoint files of ``entry.repo`` at its revision."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils import filter_repo_objects

    from .pull import hub_errors

    api = HfApi()
    q = Quant(name="checkpoint", file="(file list)")
    with hub_errors(entry, q, "list the files of"):
        commit = api.repo_info(entry.repo, revision=entry.revision).sha
        files = [f for f in api.list_repo_tree(entry.repo, recursive=True, revision=commit) if isinstance(f, RepoFile)]
    wanted = set(filter_repo_objects([f.path for f in files], allow_patterns=list(CHECKPOINT_PATTERNS)))
    chosen = [f for f in files if f.path in wanted]
    if not any(f.path.endswith(".safetensors") for f in chosen) or not any(f.path == "config.json" for f in chosen):
        raise UserError(f"{entry.repo} (revision {entry.revision}) has no safetensors checkpoint (config.json + "
                        f"*.safetensors); check hf_repo of {entry.name} in {entry.source}")
    return commit, chosen


def pull_checkpoint(name: str, registry: Registry | None = None,
                    progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Make the checkpoint of ``name`` present in the HF cache and return its snapshot directory."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.file_download import repo_folder_name

    from . import pull as gguf_pull

    reg = registry or load_registry()
    entry = reg.get(name)
    if entry.hf_checkpoint is not None:
        problem = checkpoint_problem(entry.hf_checkpoint) if entry.hf_checkpoint.is_dir() else "it does not exist"
        if problem is None:
            gguf_pull.say(f"{entry.name}: its checkpoint is a local directory, {entry.hf_checkpoint} "
                          f"(nothing to download)")
            return entry.hf_checkpoint
        raise UserError(f"model {entry.name}: its local checkpoint {entry.hf_checkpoint} is unusable ({problem})")
    if entry.hf_repo is None:
        raise UserError(f"model {entry.name} has no hf_repo in {entry.source}: no checkpoint to download "
                        f"(add `hf_repo = \"owner/name\"` to the entry)")
    found = cached_checkpoint(entry)
    if found is not None:
        gguf_pull.say(f"{entry.name} checkpoint ({entry.hf_repo}) is already present: {found}")
        return found
    ck = _as_checkpoint(entry)
    commit, files = list_files(ck)
    total = sum((f.lfs.size if f.lfs else f.size) or 0 for f in files)
    gguf_pull.say(f"{entry.hf_repo} at {commit[:10]}: {len(files)} files, {total / 1e6:.1f} MB")
    storage = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=ck.repo, repo_type="model")
    done = 0
    for f in files:
        q = Quant(name="checkpoint", file=f.path, size=f.lfs.size if f.lfs else f.size,
                  sha256=f.lfs.sha256 if f.lfs else None)
        ck_at = dataclasses.replace(ck, revision=commit)
        meta = gguf_pull.fetch_metadata(ck_at, q)
        size, sha256 = gguf_pull.expectations(ck_at, q, meta)
        blob = storage / "blobs" / meta.etag
        sub = None if progress is None else (lambda got, _t, base=done: progress(base + got, total))
        if blob.exists():
            verify(blob, size, sha256, ck_at, q)
        else:
            gguf_pull.download(ck_at, q, meta, blob, size, sha256, sub, verify=verify)
        done += size or 0
        if progress is not None:
            progress(done, total)
    from .pull import hub_errors

    with hub_errors(ck, Quant(name="checkpoint", file="(snapshot)"), "register"):
        snapshot = Path(snapshot_download(ck.repo, revision=ck.revision, allow_patterns=list(CHECKPOINT_PATTERNS)))
    problem = checkpoint_problem(snapshot)
    if problem is not None:
        raise UserError(f"the checkpoint of {entry.name} is incomplete after the download ({problem}); "
                        f"run `sc2lsp models pull {entry.name} --checkpoint` again")
    gguf_pull.say(f"{entry.name} checkpoint ({entry.hf_repo}, {total / 1e6:.1f} MB) -> {snapshot}")
    return snapshot


def verify(path: Path, size: int | None, sha256: str | None, entry: ModelEntry, q: Quant) -> None:
    """``pull.verify`` for checkpoint files: size, sha256 (LFS files), safetensors header; a failure
    deletes the file and is an error."""
    from .pull import file_sha256

    again = entry.pull_command(q)
    actual = path.stat().st_size
    if size is not None and actual != size:
        path.unlink(missing_ok=True)
        raise UserError(f"{entry.repo}/{q.file}: got {actual} bytes, expected {size}; the download was deleted, "
                        f"run `{again}` again")
    if sha256 is not None and (got := file_sha256(path, label=f"sha256 {q.file}")) != sha256:
        path.unlink(missing_ok=True)
        raise UserError(f"sha256 mismatch for {entry.repo}/{q.file}: expected {sha256}, got {got}; the download "
                        f"was deleted. Run `{again}` again")
    if q.file.endswith(".safetensors"):
        try:
            check_safetensors(path, f"{entry.repo}/{q.file}")
        except UserError as e:
            path.unlink(missing_ok=True)
            raise UserError(f"the download is not a usable checkpoint file: {e}; it was deleted") from None
