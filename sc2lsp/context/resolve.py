"""Resolve an import of one file to files of the index, per import style (pure, index lookups only).

``module_files(index, family, from_path, module)`` -> indexed paths the module may live in, best
first (an empty tuple: the module is outside the repository, e.g. a standard library).
Candidates are found by path suffix (``a.b`` -> ``.../a/b.py``), so the index needs no notion of
source roots; among several matches the one sharing the longest directory prefix with the
importing file wins.
"""

from __future__ import annotations

import posixpath

from .index import RepoIndex

_JS_EXTS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts", ".mts", ".cts")
_C_IMPL = (".c", ".cc", ".cpp", ".cxx")


def _closeness(a: str, b: str) -> int:
    pa, pb = posixpath.dirname(a).split("/"), posixpath.dirname(b).split("/")
    n = 0
    for x, y in zip(pa, pb):
        if x != y:
            break
        n += 1
    return n


def by_suffix(index: RepoIndex, suffix: str, near: str) -> list[str]:
    """Indexed paths equal to ``suffix`` or ending with ``/suffix``, closest to ``near`` first."""
    suffix = posixpath.normpath(suffix).lstrip("/")
    if suffix.startswith(".."):
        return []
    hits = [p for p in index.files_named(posixpath.basename(suffix)) if p == suffix or p.endswith("/" + suffix)]
    hits.sort(key=lambda p: (-_closeness(p, near), p.count("/"), p))
    return hits


def _exact(index: RepoIndex, path: str) -> list[str]:
    path = posixpath.normpath(path)
    return [path] if path in index else []


def module_files(index: RepoIndex, family: str, from_path: str, module: str) -> tuple[str, ...]:
    """Cached per index generation (any change to the index starts a new cache)."""
    cache = index.__dict__.get("_resolve_cache")
    if cache is None or cache[0] != index.generation:
        cache = index.__dict__["_resolve_cache"] = (index.generation, {})
    key = (family, from_path, module)
    hit = cache[1].get(key)
    if hit is None:
        if len(cache[1]) > 20_000:
            cache[1].clear()
        hit = cache[1][key] = _module_files(index, family, from_path, module)
    return hit


def _module_files(index: RepoIndex, family: str, from_path: str, module: str) -> tuple[str, ...]:
    here = posixpath.dirname(from_path)
    out: list[str] = []
    if family == "python":
        dots = len(module) - len(module.lstrip("."))
        rest = module[dots:].replace(".", "/")
        if dots:
            base = here
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            stem = posixpath.join(base, rest) if rest else base
            for cand in (stem + ".py", stem + ".pyi", stem + "/__init__.py", stem + "/__init__.pyi"):
                out += _exact(index, cand)
        else:
            for cand in (rest + ".py", rest + ".pyi", rest + "/__init__.py"):
                out += by_suffix(index, cand, from_path)
    elif family == "js":
        if module.startswith("."):
            stem = posixpath.normpath(posixpath.join(here, module))
            out += _exact(index, stem)
            base = stem[: -len(posixpath.splitext(stem)[1])] if posixpath.splitext(stem)[1] in (".js", ".mjs", ".cjs") else stem
            for ext in _JS_EXTS:  # TypeScript sources are imported with a .js extension too
                out += _exact(index, base + ext)
            for ext in _JS_EXTS:
                out += _exact(index, stem + "/index" + ext)
    elif family == "go":
        parts = module.split("/")
        for k in range(len(parts), 0, -1):  # longest directory suffix first
            suffix = "/".join(parts[-k:])
            dirs = [d for d in index.dirs() if d == suffix or d.endswith("/" + suffix)]
            if dirs:
                dirs.sort(key=lambda d: (-_closeness(d + "/x", from_path), d))
                out += [p for p in index.files_in_dir(dirs[0]) if p.endswith(".go")]
                break
    elif family == "rust":
        parts = [p for p in module.split("::") if p]
        if parts and parts[0] in ("std", "core", "alloc"):
            return ()
        base = here
        if parts and parts[0] == "super":
            while parts and parts[0] == "super":
                parts.pop(0)
                base = posixpath.dirname(base)
        elif parts and parts[0] == "self":
            parts.pop(0)
        elif parts and parts[0] == "crate":
            parts.pop(0)
            base = ""
        for k in range(len(parts), 0, -1):  # a::b::Item: the module may be a/b or a
            stem = "/".join(parts[:k])
            for cand in (stem + ".rs", stem + "/mod.rs"):
                out += _exact(index, posixpath.join(base, cand)) if base else []
                out += by_suffix(index, cand, from_path)
            if out:
                break
    elif family == "java":
        path = module.replace(".", "/")
        out += by_suffix(index, path + ".java", from_path)
        if not out:  # a package: every file of the folder
            parts = path.split("/")
            dirs = [d for d in index.dirs() if d == path or d.endswith("/" + path)] if parts else []
            for d in sorted(dirs)[:1]:
                out += list(index.files_in_dir(d))
    elif family == "c":
        out += _exact(index, posixpath.join(here, module))
        out += by_suffix(index, module, from_path)
        stem = posixpath.splitext(posixpath.basename(module))[0]
        if out:  # the implementation next to the header
            d = posixpath.dirname(out[0])
            for ext in _C_IMPL:
                out += _exact(index, posixpath.join(d, stem + ext))
    seen: dict[str, None] = {}
    for p in out:
        if p != from_path:
            seen.setdefault(p, None)
    return tuple(seen)
