"""Which paths of a workspace are never read, by name: secret-bearing files, vendored and tool
folders, generated and binary names, and the ignore files (``.gitignore`` with git semantics,
``.sc2lspignore``). Pure (no I/O): ``scan`` walks with these rules, ``policy.FilePolicy`` judges
one file with them, ``finetune prepare`` trains only on what they allow."""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from typing import Sequence

#: Secret-bearing file names (fnmatch patterns on the base name, case-insensitive).
SECRET_NAMES = (
    ".env*", "*.env", ".envrc", "secret*", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.asc",
    "*.gpg", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.ppk",
    "credentials", "credentials.*", "*credentials*.json", ".netrc", "_netrc", ".pgpass", ".pypirc",
    ".npmrc", ".git-credentials", ".htpasswd", "*.tfstate", "*.tfstate.*", "*.tfvars", "service-account*.json",
    ".s3cfg", ".vault-token", ".boto", ".dockercfg", "kubeconfig",
)
#: Folders whose every file is secret-bearing (any depth).
SECRET_DIRS = frozenset({".kube", ".ssh", ".gnupg", ".aws", ".azure", "secrets", ".secrets"})
#: (folder, file) pairs: a file of that name directly in a folder of that name.
SECRET_IN_DIR = frozenset({(".docker", "config.json"), (".config/gcloud", "credentials.db"),
                           ("gcloud", "application_default_credentials.json")})


@functools.lru_cache(maxsize=None)
def _globs(patterns: tuple[str, ...]) -> re.Pattern:
    """One regular expression matching a (lower-cased) name that any of the fnmatch ``patterns``
    matches, case-insensitively: what ``any(fnmatchcase(...))`` answers, in one match. Every
    path of a scan is judged against these lists (8,577 files: 620,000 fnmatch calls before)."""
    return re.compile("|".join(fnmatch.translate(p.lower()) for p in patterns))


def is_secret_path(rel_path: str) -> bool:
    """Does this ``/``-separated path (relative or absolute) name a secret-bearing file?"""
    parts = [p for p in rel_path.replace(os.sep, "/").split("/") if p]
    if not parts:
        return False
    name = parts[-1].lower()
    if _globs(SECRET_NAMES).match(name):
        return True
    low = [p.lower() for p in parts[:-1]]
    if any(p in SECRET_DIRS for p in low):
        return True
    folder = "/".join(low)
    return any(name == f and (folder == d or folder.endswith("/" + d)) for d, f in SECRET_IN_DIR)


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
    return _globs(tuple(patterns)).match(name.lower()) is not None


@functools.lru_cache(maxsize=4096)  # folder names repeat: every file's path is judged part by part
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
