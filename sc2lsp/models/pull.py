"""``sc2lsp models pull NAME [--quant Q]``: download a registry model's GGUF into the HF cache.

The file ends up exactly where ``huggingface_hub.hf_hub_download`` puts it
(``$HF_HUB_CACHE/models--owner--name/blobs/<etag>`` with a ``snapshots/<commit>/<file>`` link,
``refs/<revision>``), so ``try_to_load_from_cache`` and every HF tool find it. Steps:

1. ``get_hf_file_metadata`` (HEAD): commit, ETag, size. 404, refused access, an unreachable
   endpoint and a hub file that no longer matches models.toml (exact size, pinned sha256) are
   each one clear ``UserError`` before any byte is fetched.
2. The bytes are fetched by huggingface_hub's ``http_get`` (its progress bar, and its own retries
   with a ``Range`` request when the connection drops mid-file) into
   ``blobs/<etag>.sc2lsp-partial``. That file survives an interruption (Ctrl-C, a dead network,
   a killed process) and the next ``pull`` resumes from its end; huggingface_hub 2.x alone would
   start over, since it deletes its per-process temporary file on failure.
3. Size, sha256 (models.toml's, else the hub's ETag, which for LFS and Xet files is the file's
   sha256: huggingface_hub issue #3018) and the GGUF header (``check_gguf``) are checked. A
   failure deletes the download and is an error.
4. Only then is the file renamed to ``blobs/<etag>`` and ``hf_hub_download`` called, which finds
   the blob and writes the snapshot link and the ref. So a partial or unverified file is never
   where a model is looked for.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from ..errors import UserError
from .gguf_check import check_gguf
from .registry import ModelEntry, Quant, Registry, format_size, hf_cache_path, load_registry, size_problem

PARTIAL_SUFFIX = ".sc2lsp-partial"
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def say(msg: str) -> None:
    print(msg, flush=True)


def pull(name: str, quant: str | None = None, registry: Registry | None = None,
         progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Make ``name`` (``quant``) present locally and return its path (see the module docstring).

    ``progress(bytes_so_far, total_or_None)`` is called as the file arrives (from this thread),
    e.g. for the language server's ``$/progress``."""
    reg = registry or load_registry()
    entry = reg.get(name)
    q = entry.quant(quant)
    if q.path is not None:
        if not q.path.is_file():
            raise UserError(
                f"model {entry.name} is a local file, not a download, and {q.path} is missing "
                f"(declared in {entry.source}; rebuild or restore it)"
            )
        check_gguf(q.path)
        say(f"{entry.name} ({q.name}) is already present: {q.path} (a local file; nothing to download)")
        return q.path

    from huggingface_hub import constants

    existing = hf_cache_path(entry, q)
    if existing is not None:
        problem = size_problem(existing, q)
        if problem is None:
            try:
                check_gguf(existing, hint="")
            except UserError as e:
                problem = str(e)
        if problem is None:
            say(f"{entry.name} ({q.name}) is already present: {existing}")
            return existing
        say(f"the cached copy is damaged ({problem}): downloading it again")
        _remove_cached(existing)

    meta = fetch_metadata(entry, q)
    size, sha256 = expectations(entry, q, meta)
    from huggingface_hub.file_download import repo_folder_name

    storage = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=entry.repo, repo_type="model")
    blob = storage / "blobs" / meta.etag
    if blob.exists():  # fetched earlier (by us or another HF tool) but not linked at this revision
        verify(blob, size, sha256, entry, q)
    else:
        download(entry, q, meta, blob, size, sha256, progress)
    path = link(entry, q)
    if os.path.realpath(path) != os.path.realpath(blob):
        raise UserError(f"huggingface_hub linked {path} to another blob than the verified {blob}; run the pull again")
    say(f"{entry.name} ({q.name}, {format_size(q, size)}) -> {path}")
    return path


# --------------------------------------------------------------------------- hub calls


@contextmanager
def hub_errors(entry: ModelEntry, q: Quant, doing: str):
    """Turn huggingface_hub / HTTP failures into one UserError naming the file and the remedy."""
    from huggingface_hub import constants, errors

    what = f"{entry.repo}/{q.file} (revision {entry.revision})"
    try:
        yield
    except errors.OfflineModeIsEnabled:
        raise UserError(f"cannot {doing} {what}: offline mode is on (HF_HUB_OFFLINE); unset it to download") from None
    except errors.GatedRepoError:
        raise UserError(f"access to {entry.repo} is restricted: accept its terms on the hub and log in "
                        f"(`hf auth login` or HF_TOKEN)") from None
    except errors.HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status == 404 or isinstance(e, (errors.RepositoryNotFoundError, errors.RevisionNotFoundError,
                                           errors.RemoteEntryNotFoundError)):
            raise UserError(f"{what} was not found on {constants.ENDPOINT} (HTTP {status}); "
                            f"check the entry {entry.name} in {entry.source}") from None
        if status in (401, 403):
            raise UserError(f"{constants.ENDPOINT} refused access to {what} (HTTP {status}); "
                            f"log in with `hf auth login` or set HF_TOKEN") from None
        raise UserError(f"cannot {doing} {what}: HTTP {status} from {constants.ENDPOINT}") from None
    except errors.FileMetadataError as e:
        raise UserError(f"{constants.ENDPOINT} did not answer like a Hugging Face hub for {what}: "
                        f"{str(e).splitlines()[0]}") from None
    except Exception as e:
        if not _is_network_error(e):
            raise
        raise UserError(f"cannot reach {constants.ENDPOINT} to {doing} {what}: {_reason(e)}; "
                        f"check the network connection (or HF_ENDPOINT / proxy settings) and try again") from None


def _is_network_error(e: BaseException) -> bool:
    return (isinstance(e, (ConnectionError, TimeoutError))
            or type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore"))


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def fetch_metadata(entry: ModelEntry, q: Quant):
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(entry.repo, q.file, revision=entry.revision)
    with hub_errors(entry, q, "look up"):
        meta = get_hf_file_metadata(url)
    if not meta.etag or not meta.commit_hash:
        raise UserError(f"{url} answered without ETag/X-Repo-Commit; it does not look like a Hugging Face hub")
    return meta


def expectations(entry: ModelEntry, q: Quant, meta) -> tuple[int | None, str | None]:
    """(size, sha256) the download must have; a hub file that contradicts models.toml is an error."""
    size = q.exact_size
    if size is not None and meta.size is not None and meta.size != size:
        raise UserError(
            f"the hub serves {entry.repo}/{q.file} with {meta.size} bytes but {entry.source} says {size} "
            f"(entry {entry.name}, quant {q.name}): the file changed upstream; update the entry"
        )
    hub_sha = meta.etag.lower() if SHA256_RE.fullmatch(meta.etag.lower()) else None
    if q.sha256 and hub_sha and q.sha256 != hub_sha:
        raise UserError(
            f"the hub's {entry.repo}/{q.file} has sha256 {hub_sha} but {entry.source} pins {q.sha256} "
            f"(entry {entry.name}, quant {q.name}): the file changed upstream; update the entry"
        )
    return size if size is not None else meta.size, q.sha256 or hub_sha


def link(entry: ModelEntry, q: Quant) -> Path:
    """hf_hub_download finds the verified blob and writes the snapshot link and the ref."""
    from huggingface_hub import hf_hub_download

    with hub_errors(entry, q, "register"):
        return Path(hf_hub_download(entry.repo, q.file, revision=entry.revision))


# --------------------------------------------------------------------------- download and verify


class _Counting:
    """A file that reports how many bytes it holds after every write."""

    def __init__(self, f, progress: Callable[[int, int | None], None], total: int | None):
        self._f, self._progress, self._total = f, progress, total

    def write(self, data) -> int:
        n = self._f.write(data)
        self._progress(self._f.tell(), self._total)
        return n

    def __getattr__(self, name):
        return getattr(self._f, name)


def download(entry: ModelEntry, q: Quant, meta, blob: Path, size: int | None, sha256: str | None,
             progress: Callable[[int, int | None], None] | None = None, verify=None) -> None:
    """Fetch into ``blob`` + PARTIAL_SUFFIX (resuming at its end), check it (``verify``: this module's
    GGUF check by default), then rename it to ``blob``."""
    verify = verify or globals()["verify"]
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    partial = blob.with_name(blob.name + PARTIAL_SUFFIX)
    partial.parent.mkdir(parents=True, exist_ok=True)
    resolve_url = _resolve_url(entry, q)
    # like hf_hub_download's plain-HTTP path: a Xet-stored file is fetched through the resolve URL
    # (redirects followed), any other from the location the HEAD request was redirected to
    url = resolve_url if getattr(meta, "xet_file_data", None) is not None else meta.location
    headers = build_hf_headers()
    if urlparse(url).netloc != urlparse(resolve_url).netloc:
        headers.pop("authorization", None)  # a CDN: never send the token elsewhere
    with open(partial, "ab") as f:
        _lock(f, partial, entry, q)
        have = f.seek(0, os.SEEK_END)
        if size is not None and have > size:  # longer than the file: not a prefix of it
            f.truncate(0)
            have = f.seek(0)
        if have:
            say(f"resuming {q.file} at {have} of {size if size is not None else '?'} bytes")
        try:
            sink = f if progress is None else _Counting(f, progress, size)
            if progress is not None:
                progress(have, size)
            http_get(url, sink, resume_size=have, headers=headers, expected_size=size, displayed_filename=q.file)
        except KeyboardInterrupt:
            f.flush()
            print(f"\ndownload interrupted at {f.tell()} of {size or '?'} bytes; "
                  f"run `{entry.pull_command(q)}` again to resume", file=sys.stderr, flush=True)
            raise
        except Exception as e:
            if not (_is_network_error(e) or isinstance(e, OSError)):
                raise
            f.flush()
            got = f.tell()
            if size is not None and got > size:  # more bytes than the file has: useless as a prefix
                f.truncate(0)
            raise UserError(
                f"download of {entry.repo}/{q.file} from {urlparse(url).netloc} stopped at {got} of "
                f"{size or '?'} bytes ({_reason(e)}); run `{entry.pull_command(q)}` again to resume"
            ) from None
        f.flush()
        verify(partial, size, sha256, entry, q)
        os.replace(partial, blob)  # still under the lock: nobody appends to a renamed file


def _resolve_url(entry: ModelEntry, q: Quant) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(entry.repo, q.file, revision=entry.revision)


def _lock(f, partial: Path, entry: ModelEntry, q: Quant) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; concurrent pulls of one file are the user's call
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(f"another `sc2lsp models pull` is downloading {entry.repo}/{q.file} "
                        f"right now ({partial})") from None


def verify(path: Path, size: int | None, sha256: str | None, entry: ModelEntry, q: Quant) -> None:
    """Check size, sha256 and GGUF header of a finished download; a failure deletes it and is an error."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        path.unlink(missing_ok=True)
        raise UserError(f"{entry.repo}/{q.file}: got {actual} bytes, expected {size}; the download was deleted, "
                        f"run `{entry.pull_command(q)}` again")
    if sha256 is not None:
        got = file_sha256(path, label=f"sha256 {q.file}")
        if got != sha256:
            path.unlink(missing_ok=True)
            raise UserError(
                f"sha256 mismatch for {entry.repo}/{q.file}: expected {sha256}, got {got}; the download was deleted. "
                f"Run `{entry.pull_command(q)}` again; if it keeps failing, the file changed upstream"
            )
    try:
        check_gguf(path, label=f"{entry.repo}/{q.file}", hint="")
    except UserError as e:
        path.unlink(missing_ok=True)
        raise UserError(f"the download is not a usable model: {e}; it was deleted") from None


def file_sha256(path: Path, label: str = "sha256") -> str:
    from huggingface_hub.utils import tqdm

    h = hashlib.sha256()
    total = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=label,
                                     disable=True if total < 256 << 20 else None) as bar:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def _remove_cached(pointer: Path) -> None:
    """Delete a cached file that failed its size check: the snapshot link and the blob behind it."""
    target = Path(os.path.realpath(pointer))
    pointer.unlink(missing_ok=True)
    if target != pointer:
        target.unlink(missing_ok=True)
