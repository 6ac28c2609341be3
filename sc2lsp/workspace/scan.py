"""Which files of a workspace may enter a prompt or a training set, and a walker that applies it.

Shared by the server (repository context) and ``finetune prepare`` (training data), so a file
the server would never show the model is never trained on either.

Rules, in order (the first that applies gives the reason):

* ``.gitignore`` files (at any depth, git semantics, deeper files win) and ``.sc2lspignore``
  (same syntax, checked after them, so it can also re-include with ``!``);
* secret-bearing files (``policy.is_secret_path``): ``.env*``, ``.envrc``, ``secret*``, ``*.pem``,
  ``*.key``, SSH keys, credentials files, ``*.tfstate*``, ``.s3cfg``, ``.vault-token``, and
  everything under ``.kube/``, ``.ssh/``, ``secrets/``, plus ``.docker/config.json``;
* vendored and tool directories (``node_modules``, ``vendor``, ``third_party``, ``.git``,
  virtualenvs, caches) and generated files by name (lockfiles, ``*_pb2.py``, ``*.min.js``);
* files over ``max_bytes`` (1 MB);
* by content: binary (a NUL byte or not UTF-8), minified (very long lines), generated (a
  "do not edit"/"auto-generated" marker near the top).

``classify`` is pure (path + bytes in, reason out); ``scan`` walks a directory, never follows a
symlink to a directory, and never reads a file whose real path lies outside the root.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from ..core.content import MAX_BYTES, MINIFIED_MAX_LINE, MINIFIED_MEAN_LINE, content_reason  # noqa: F401
from .policy import SECRET_NAMES as SECRET_PATTERNS, is_secret_path  # noqa: F401 (the one secret list)

#: Directory names that hold vendored, installed or tool-generated code.
VENDORED_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "bower_components", "vendor", "third_party", "third-party",
    "thirdparty", "__pycache__", ".venv", "venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", "site-packages", ".eggs", ".idea", ".vscode", "dist", ".next", ".gradle", "target",
    "Pods", "Carthage", ".terraform",
})
_VENDORED_DIR_GLOBS = ("*.egg-info",)

#: Generated or minified by name.
GENERATED_PATTERNS = (
    "*.min.js", "*.min.css", "*.min.mjs", "*.map", "*-min.js", "*.bundle.js",
    "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Pipfile.lock", "Cargo.lock",
    "go.sum", "composer.lock", "Gemfile.lock", "uv.lock", "*_pb2.py", "*_pb2_grpc.py", "*.pb.go",
    "*.pb.h", "*.pb.cc", "*.g.dart", "*.designer.cs", "*.generated.*",
)

#: Binary by extension (checked before any read; the content check catches the rest).
BINARY_EXTENSIONS = frozenset(
    ".png .jpg .jpeg .gif .bmp .ico .webp .tiff .psd .pdf .zip .gz .tgz .bz2 .xz .zst .7z .rar .tar "
    ".jar .war .class .so .dylib .dll .exe .o .a .lib .obj .pyc .pyo .pyd .whl .egg .bin .dat .db "
    ".sqlite .sqlite3 .npy .npz .pt .pth .ckpt .safetensors .gguf .onnx .pb .tflite .h5 .pkl .pickle "
    ".parquet .arrow .feather .woff .woff2 .ttf .otf .eot .mp3 .mp4 .wav .ogg .flac .avi .mov .mkv "
    ".webm .iso .dmg .deb .rpm .wasm".split()
)

#: Source and text extensions worth training on (``finetune prepare``'s default selection).
SOURCE_EXTENSIONS = frozenset(
    ".py .pyi .js .jsx .mjs .cjs .ts .tsx .go .rs .java .kt .kts .scala .c .h .cc .cpp .cxx .hpp .hh "
    ".cs .rb .php .swift .m .mm .lua .pl .pm .r .jl .sh .bash .zsh .sql .html .css .scss .vue .svelte "
    ".dart .ex .exs .erl .hs .ml .mli .clj .el .vim .proto .toml .yaml .yml .cfg .ini .md .rst "
    ".cmake .gradle .tf".split()
)
SOURCE_NAMES = frozenset({"Makefile", "Dockerfile", "CMakeLists.txt", "Rakefile", "Gemfile", "BUILD", "WORKSPACE"})



def _match_any(name: str, patterns: Sequence[str]) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def is_vendored_dir(name: str) -> bool:
    return name in VENDORED_DIRS or _match_any(name, _VENDORED_DIR_GLOBS)


def is_source_path(rel_path: str) -> bool:
    name = rel_path.rsplit("/", 1)[-1]
    return name in SOURCE_NAMES or os.path.splitext(name)[1].lower() in SOURCE_EXTENSIONS


class IgnoreRules:
    """``.gitignore``-style rule sets, each anchored at a directory of the workspace.

    ``add(base, lines, source)`` registers the lines of an ignore file found in directory
    ``base`` ("" = root). ``reason(rel_path, is_dir)`` answers for a path relative to the root:
    within each source (``.gitignore``, then ``.sc2lspignore``) the deepest file with a matching
    rule decides, and a later source overrides an earlier one.
    """

    SOURCES = (".gitignore", ".sc2lspignore")

    def __init__(self) -> None:
        import pathspec

        self._pathspec = pathspec
        self._specs: dict[str, list[tuple[str, object]]] = {s: [] for s in self.SOURCES}

    def add(self, base: str, lines: Sequence[str], source: str = ".gitignore") -> None:
        spec = self._pathspec.GitIgnoreSpec.from_lines(lines)
        self._specs.setdefault(source, []).append((base.strip("/"), spec))
        self._specs[source].sort(key=lambda bs: bs[0].count("/") + (1 if bs[0] else 0))

    def reason(self, rel_path: str, is_dir: bool = False) -> str | None:
        verdict: str | None = None
        for source, specs in self._specs.items():
            decided = None
            for base, spec in specs:
                if base and not rel_path.startswith(base + "/"):
                    continue
                sub = rel_path[len(base) + 1 :] if base else rel_path
                r = spec.check_file(sub + "/" if is_dir else sub)
                if r.include is not None:
                    decided = r.include
            if decided is True:
                verdict = f"ignored by {source}"
            elif decided is False:
                verdict = None
        return verdict


def path_reason(rel_path: str, ignore: IgnoreRules | None = None, *, is_dir: bool = False) -> str | None:
    """Why ``rel_path`` (relative, ``/``-separated) is skipped, judged by its name alone."""
    parts = rel_path.split("/")
    for d in parts if is_dir else parts[:-1]:
        if is_vendored_dir(d):
            return "vendored or tool directory"
    if ignore is not None:
        r = ignore.reason(rel_path, is_dir=is_dir)
        if r:
            return r
    if is_dir:
        return None
    name = parts[-1]
    if is_secret_path(rel_path):
        return "secret-bearing file"
    if _match_any(name, GENERATED_PATTERNS):
        return "generated or minified (by name)"
    if os.path.splitext(name)[1].lower() in BINARY_EXTENSIONS:
        return "binary (by extension)"
    return None


def classify(rel_path: str, data: bytes, ignore: IgnoreRules | None = None, *,
             max_bytes: int = MAX_BYTES) -> tuple[str | None, str | None]:
    """Pure decision for one file: ``(reason, None)`` to skip it, ``(None, text)`` to use it."""
    reason = path_reason(rel_path, ignore)
    if reason:
        return reason, None
    return content_reason(data, max_bytes=max_bytes)


@dataclass(frozen=True)
class ScanEntry:
    path: str  #: relative to the root, ``/``-separated
    reason: str | None  #: why it was skipped; None when kept
    text: str | None = field(default=None, repr=False)  #: the contents when kept (and read)
    size: int = 0

    @property
    def kept(self) -> bool:
        return self.reason is None


def _read_ignore(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def scan(root: str | Path, *, max_bytes: int = MAX_BYTES, read: bool = True,
         report_dirs: bool = False) -> Iterator[ScanEntry]:
    """Walk ``root`` in sorted order, yielding every file with its verdict.

    Skipped directories are not entered (yielded once with their reason when ``report_dirs``).
    Symlinks: a link to a directory is never followed; a link to a file is read only when its
    real path is inside the root. Unreadable files (permissions, deleted meanwhile) are skipped
    with a reason, never raised.
    """
    root = Path(root)
    real_root = root.resolve()
    rules = IgnoreRules()
    policy = None

    def walk(rel_dir: str) -> Iterator[ScanEntry]:
        nonlocal policy
        d = root / rel_dir if rel_dir else root
        for source in IgnoreRules.SOURCES:
            try:
                present = (d / source).is_file()
            except OSError:  # a folder we may not enter (EACCES): its listing fails just below
                present = False
            if present:
                rules.add(rel_dir, _read_ignore(d / source), source)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            yield ScanEntry(rel_dir or ".", f"unreadable directory: {e.strerror}")
            return
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            try:
                is_link = e.is_symlink()
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                reason = path_reason(rel, rules, is_dir=True)
                if reason is None:
                    yield from walk(rel)
                elif report_dirs:
                    yield ScanEntry(rel + "/", reason)
                continue
            if is_link:
                target = Path(os.path.realpath(d / e.name))
                if target.is_dir():
                    if report_dirs:
                        yield ScanEntry(rel + "/", "symlinked directory (not followed)")
                    continue
                if real_root != target and real_root not in target.parents:
                    yield ScanEntry(rel, "symlink pointing outside the workspace")
                    continue
            elif not e.is_file(follow_symlinks=False):
                continue  # sockets, fifos, devices
            reason = path_reason(rel, rules)
            if reason is None and is_link:  # a link is judged by its target too (``ok.py -> .env``)
                if policy is None:
                    from .policy import FilePolicy

                    policy = FilePolicy([real_root])
                why = policy.reason(real_root, target.relative_to(real_root).as_posix())
                reason = f"symlink to an excluded file ({why})" if why else None
            if reason:
                yield ScanEntry(rel, reason)
                continue
            try:
                size = os.stat(d / e.name).st_size
                if size > max_bytes:
                    yield ScanEntry(rel, f"larger than {max_bytes} bytes", size=size)
                    continue
                if not read:
                    yield ScanEntry(rel, None, size=size)
                    continue
                data = (d / e.name).read_bytes()
            except OSError as err:
                yield ScanEntry(rel, f"unreadable: {err.strerror or err}")
                continue
            reason, text = content_reason(data, max_bytes=max_bytes)
            yield ScanEntry(rel, reason, text, size=len(data))

    yield from walk("")
