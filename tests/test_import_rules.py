"""The import rules of ARCHITECTURE.md, checked on the source (ast; nothing is imported):
no import circles between modules of sc2lsp/ and finetune/ (imports inside functions count; only
``if TYPE_CHECKING:`` imports do not), and no forbidden edge."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sc2lsp", "finetune")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def imports_of(path: Path, modules: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``path``, relative ones resolved; a name
    imported from a package is the submodule when it is one."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub if sub in modules else target, node.lineno))
    return out


def graph() -> dict[str, list[tuple[str, int]]]:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules) for p in files}, {module_name(p): p for p in files}


GRAPH, FILES = graph()


def _owner(target: str) -> str | None:
    """The project module ``target`` is or lies in (the longest known prefix), else None."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in GRAPH:
            return cand
    return None


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (as a path a -> ... -> a), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _module_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for mod, imps in GRAPH.items():
        for target, _ in imps:
            owner = _owner(target)
            # a module importing its own package's __init__ (or a package its submodule) is not a circle
            if owner is not None and owner != mod and not mod.startswith(owner + "."):
                edges.setdefault(mod, set()).add(owner)
    return edges


def test_no_import_circles_between_modules():
    assert find_cycle(_module_edges()) is None, " -> ".join(find_cycle(_module_edges()))


def test_no_import_circles_between_sc2lsp_packages():
    """sc2lsp's subpackages (core, context, workspace, lsp, ...) form layers, not a knot."""
    def pkg(m: str) -> str:
        parts = m.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 else parts[0]

    edges: dict[str, set[str]] = {}
    for mod, targets in _module_edges().items():
        if mod.startswith("sc2lsp."):
            for t in targets:
                if t.startswith("sc2lsp.") and pkg(t) != pkg(mod):
                    edges.setdefault(pkg(mod), set()).add(pkg(t))
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle)


def _top(target: str) -> str:
    return target.split(".")[0]


def _in(mod: str, *prefixes: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


RULES = [
    # (what, predicate(module, imported) -> violation?)
    ("pygls/lsprotocol only in sc2lsp.lsp",
     lambda mod, t: _top(t) in ("pygls", "lsprotocol") and not _in(mod, "sc2lsp.lsp")),
    ("llama_cpp only in sc2lsp/backends/llama_cpp*.py and sc2lsp.models",
     lambda mod, t: _top(t) == "llama_cpp" and mod.startswith("sc2lsp")
     and not (mod.startswith("sc2lsp.backends.llama_cpp") or _in(mod, "sc2lsp.models"))),
    ("no torch/transformers/peft in sc2lsp",
     lambda mod, t: _top(t) in ("torch", "transformers", "peft") and _in(mod, "sc2lsp")),
    ("sc2lsp never imports finetune",
     lambda mod, t: _top(t) == "finetune" and _in(mod, "sc2lsp")),
    ("sc2lsp.core imports only the standard library and sc2lsp.core",
     lambda mod, t: _in(mod, "sc2lsp.core") and not _in(t, "sc2lsp.core") and _top(t) != "__future__"
     and _top(t) not in sys.stdlib_module_names),
]


@pytest.mark.parametrize("rule", [r[0] for r in RULES])
def test_no_forbidden_import(rule):
    check = dict(RULES)[rule]
    bad = [f"{FILES[mod].relative_to(ROOT)}:{line} imports {t}" for mod, imps in GRAPH.items()
           for t, line in imps if check(mod, t)]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_circles_and_edges():
    """The rules can fail: a made-up circle and edges are reported."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
    rules = dict(RULES)
    assert rules["sc2lsp.core imports only the standard library and sc2lsp.core"]("sc2lsp.core.x", "numpy")
    assert not rules["sc2lsp.core imports only the standard library and sc2lsp.core"]("sc2lsp.core.x", "re")
    assert rules["pygls/lsprotocol only in sc2lsp.lsp"]("sc2lsp.engine", "lsprotocol.types")
    assert rules["no torch/transformers/peft in sc2lsp"]("sc2lsp.models.convert", "torch")
    # relative imports resolve: sc2lsp/lsp/server.py imports sc2lsp.lsp.features
    assert any(t == "sc2lsp.lsp.features" for t, _ in GRAPH["sc2lsp.lsp.server"])
