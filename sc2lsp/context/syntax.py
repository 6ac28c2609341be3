"""Syntax error counts from tree-sitter, for syntax-validated truncation of suggestions.

``syntax_checker("python")`` returns a callable ``text -> int`` (the number of ERROR and MISSING
nodes in the parse tree) that ``sc2lsp.core.postprocess`` accepts as ``syntax_errors``, or
``None`` when the language has no installed grammar. Grammars come only from the per-language
wheels (``tree_sitter_python``, ``tree_sitter_javascript``, ...), never from a download; a new
language is one entry in ``GRAMMARS``.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections import OrderedDict
from functools import cache

from tree_sitter import Language, Node, Parser, Tree

#: Language name -> (module of its grammar wheel, function returning the language pointer).
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

#: Other names (LSP language ids, file extensions) for the languages above.
ALIASES: dict[str, str] = {
    "py": "python",
    "js": "javascript", "jsx": "javascript", "mjs": "javascript", "cjs": "javascript",
    "javascriptreact": "javascript",
    "ts": "typescript", "typescriptreact": "tsx",
    "rs": "rust", "golang": "go",
    "h": "c", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp",
}


def canonical_language(name: str) -> str:
    name = name.lower()
    return ALIASES.get(name, name)


def available_languages() -> tuple[str, ...]:
    """The languages of ``GRAMMARS`` whose grammar wheel is installed."""
    return tuple(n for n, (mod, _) in GRAMMARS.items() if importlib.util.find_spec(mod) is not None)


@cache
def load_language(name: str) -> Language | None:
    """The tree-sitter ``Language`` for ``name`` (or an alias), ``None`` if not installed."""
    entry = GRAMMARS.get(canonical_language(name))
    if entry is None:
        return None
    module_name, func = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return Language(getattr(module, func)())


def count_errors(node: Node) -> int:
    """ERROR and MISSING nodes under ``node`` (itself included); error-free subtrees are skipped."""
    if not node.has_error:
        return 0
    count = 0
    cursor = node.walk()
    while True:
        n = cursor.node
        if n.is_error or n.is_missing:
            count += 1
        if n.has_error and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():  # back above the walk's root
                return count


class SyntaxChecker:
    """``checker(text)`` -> number of syntax errors; thread-safe.

    Post-processing asks about texts that differ only around the cursor (``prefix + suffix``,
    then ``prefix + candidate + suffix`` for shorter and shorter candidates), so the checker
    keeps its last tree and re-parses incrementally: the difference to the last text (common
    head and tail) becomes a ``Tree.edit``. It also remembers the counts of recent texts.
    """

    def __init__(self, language: Language, cache_size: int = 64, incremental: bool = True):
        self.language = language
        self.incremental = incremental
        self._parser = Parser(language)
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size
        self._last: tuple[bytes, Tree] | None = None

    def __call__(self, text: str) -> int:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
            data = text.encode("utf-8")
            if self.incremental and self._last is not None:
                old_data, old_tree = self._last
                _apply_edit(old_tree, old_data, data)
                tree = self._parser.parse(data, old_tree)
            else:
                tree = self._parser.parse(data)
            self._last = (data, tree)
            count = count_errors(tree.root_node)
            if self._cache_size:
                self._cache[text] = count
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return count


def _common_head(a: bytes, b: bytes) -> int:
    """Length of the common prefix of ``a`` and ``b`` (binary search over slice compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _point(data: bytes, offset: int) -> tuple[int, int]:
    """(row, byte column) of ``offset``."""
    return data.count(b"\n", 0, offset), offset - (data.rfind(b"\n", 0, offset) + 1)


def _apply_edit(tree: Tree, old: bytes, new: bytes) -> None:
    """Describe ``old`` -> ``new`` to ``tree`` as one replaced span."""
    head = _common_head(old, new)
    limit = min(len(old), len(new)) - head
    tail = _common_head(old[::-1][:limit], new[::-1][:limit])
    old_end, new_end = len(old) - tail, len(new) - tail
    tree.edit(head, old_end, new_end, _point(old, head), _point(old, old_end), _point(new, new_end))


def syntax_checker(language: str) -> SyntaxChecker | None:
    """A shared checker for ``language`` (a name or alias), ``None`` without an installed grammar."""
    return _shared_checker(canonical_language(language))


@cache
def _shared_checker(name: str) -> SyntaxChecker | None:
    lang = load_language(name)
    return SyntaxChecker(lang) if lang is not None else None
