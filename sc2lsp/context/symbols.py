"""Symbols of one source file: definitions, imports and identifiers, from a tags query.

``extract(path, text, language)`` parses ``text`` with the language's grammar, runs its
``queries/<language>.scm`` and returns a ``FileSymbols``. It never raises on bad input: a file
with syntax errors is parsed partially (tree-sitter recovers), deep nesting costs no recursion
here, and a language without an installed grammar gets identifiers only.

Lines are 0-based. ``Definition.signature`` is the text from the start of the definition to its
body (at most ``MAX_SIGNATURE_LINES`` lines); ``doc`` is the first line of its docstring or of the
comment right above it.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass

from tree_sitter import Node, QueryCursor

from .languages import parser_for, spec, tags_query

log = logging.getLogger(__name__)

MAX_SIGNATURE_LINES = 6
MAX_SIGNATURE_CHARS = 400
#: Definitions whose members make an outline (and whose functions are methods).
CLASS_LIKE = frozenset({"class", "struct", "interface", "enum", "impl"})
IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


# Not frozen (treat it as immutable; it is hashable): a frozen dataclass is built through
# object.__setattr__ per field, 5x slower, and a parse or a symbol-cache decode makes thousands.
@dataclass(slots=True, unsafe_hash=True)
class Definition:
    name: str
    kind: str  #: function, method, class, struct, interface, enum, impl, type, constant, variable, field, macro
    path: str
    start_line: int
    end_line: int  #: inclusive
    body_line: int  #: line where the body starts (== start_line when the body opens on the signature line)
    signature: str
    doc: str = ""
    container: str | None = None  #: name of the enclosing definition

    @property
    def lines(self) -> int:
        return self.end_line - self.start_line + 1


@dataclass(frozen=True, slots=True)
class Import:
    module: str  #: as written: ``a.b``, ``..pkg``, ``./util``, ``crate::x``, ``stdio.h``
    name: str | None = None  #: the imported name (``from m import name``), None for a whole module
    alias: str | None = None  #: the local name when it differs
    wildcard: bool = False  #: brings every name of the module into scope (``import *``, ``#include``)

    @property
    def binding(self) -> str | None:
        """The local name this import introduces (None for wildcards and side-effect imports)."""
        if self.wildcard:
            return None
        if self.alias:
            return self.alias
        if self.name:
            return self.name.split(".")[-1]
        return None


@dataclass(frozen=True, slots=True)
class FileSymbols:
    definitions: tuple[Definition, ...] = ()
    imports: tuple[Import, ...] = ()
    identifiers: tuple[str, ...] = ()  #: sorted, interned; only for files without a grammar (similar chunks)
    errors: int = 0  #: 1 when the tree has syntax errors (parsed partially), else 0


def identifiers(text: str, keywords: frozenset[str] = frozenset()) -> tuple[str, ...]:
    return tuple(sorted(sys.intern(w) for w in set(IDENTIFIER.findall(text)) if w not in keywords and len(w) > 1))


#: The cheap first pass for Python (no parse), a superset of the names the tags query can capture
#: as definitions: ``def``/``class`` anywhere, names assigned or annotated at column 0 or after a
#: ``;``, ``type`` aliases (plus names in strings and the like). Patterns with a literal start:
#: several times faster than one pattern anchored at each line.
_PY_CANDIDATES = tuple(re.compile(p) for p in (
    r"(?:def|class)[ \t\f]+(\w+)", r"\n(\w+)[ \t]*[:=]", r"\ntype[ \t]+(\w+)", r";[ \t\f]*(\w+)[ \t]*[:=]"))
_ANY_IDENTIFIER = re.compile(r"[A-Za-z_$\x80-\U0010ffff][\w$]*")


def candidate_names(text: str, language: str | None) -> frozenset[str]:
    """Without parsing: a superset of the names ``extract`` finds as definitions in ``text``,
    what the repository index files an unparsed file under. Python has line patterns; other
    languages get every identifier of the text."""
    sp = spec(language)
    if sp is None:
        return frozenset()  # no grammar: no definitions
    if sp.family != "python":
        return frozenset(_ANY_IDENTIFIER.findall(text))
    found = set(_PY_CANDIDATES[0].findall(text))
    lines = "\n" + text
    found.update(_PY_CANDIDATES[1].findall(lines))
    if "type" in text:
        found.update(_PY_CANDIDATES[2].findall(lines))
    if ";" in text:
        found.update(_PY_CANDIDATES[3].findall(text))
    return frozenset(found)


def extract(path: str, text: str, language: str | None) -> FileSymbols:
    """Definitions and imports of ``text``; identifiers only without a grammar (files with a
    grammar keep none: nothing reads them, and they were a tenth of the index's memory)."""
    sp = spec(language)
    query = tags_query(language) if language else None
    parser = parser_for(language) if query is not None else None
    if query is None or parser is None:
        return FileSymbols(identifiers=identifiers(text, sp.keywords if sp else frozenset()))
    data = text.encode("utf-8", errors="replace")
    try:
        tree = parser.parse(data)
        matches = QueryCursor(query).matches(tree.root_node)
    except Exception as e:  # a grammar bug must not take the index down
        log.debug("cannot parse %s: %s", path, e)
        return FileSymbols(identifiers=identifiers(text, sp.keywords))
    defs: dict[int, tuple[int, str, Node, Node]] = {}  # name start byte -> (pattern, kind, node, name node)
    imports: list[Import] = []
    for pattern, caps in matches:
        kind = next((k[11:] for k in caps if k.startswith("definition.")), None)
        if kind is not None:
            node, name = caps[f"definition.{kind}"][0], caps["name"][0]
            key = name.start_byte
            if key not in defs or pattern < defs[key][0]:
                defs[key] = (pattern, kind, node, name)
        elif "import" in caps:
            imports.extend(_imports(sp.family, caps, data))
    definitions = _definitions(path, data, sp.family, [(k, n, nm) for _, k, n, nm in defs.values()])
    return FileSymbols(tuple(definitions), _dedupe(imports), (), int(tree.root_node.has_error))


def _text(node: Node, data: bytes) -> str:
    return data[node.start_byte:node.end_byte].decode("utf-8", errors="replace")


def _end_line(node: Node) -> int:
    end = node.end_point
    return max(node.start_point.row, end.row - 1 if end.column == 0 else end.row)


def _definitions(path: str, data: bytes, family: str, found: list[tuple[str, Node, Node]]) -> list[Definition]:
    found.sort(key=lambda t: (t[1].start_byte, -t[1].end_byte))
    out: list[Definition] = []
    stack: list[tuple[int, str, str]] = []  # (end byte, name, kind) of open enclosing definitions
    for kind, node, name_node in found:
        while stack and stack[-1][0] <= node.start_byte:
            stack.pop()
        container = stack[-1] if stack else None
        name = sys.intern(_text(name_node, data))
        kind = _refine_kind(kind, name, node, data, container[2] if container else None)
        if kind in ("variable", "constant") and family == "js" and b"require(" in data[node.start_byte:node.end_byte]:
            continue  # const x = require("m") is an import, not a definition
        body = _body(node)
        sig_end = body.start_byte if body is not None and body.start_byte > node.start_byte else node.end_byte
        signature = _signature(data[node.start_byte:sig_end].decode("utf-8", errors="replace"))
        out.append(Definition(
            name=name, kind=kind, path=path, start_line=node.start_point.row, end_line=_end_line(node),
            body_line=body.start_point.row if body is not None else node.start_point.row,
            signature=signature, doc=_doc(node, body, data, family), container=container[1] if container else None,
        ))
        stack.append((node.end_byte, name, kind))
    return out


def _refine_kind(kind: str, name: str, node: Node, data: bytes, container_kind: str | None) -> str:
    if kind == "function" and container_kind in CLASS_LIKE:
        return "method"
    if kind == "variable" and name.isupper():
        return "constant"
    if kind == "field":
        head = data[node.start_byte:min(node.end_byte, node.start_byte + 200)]
        return "constant" if b"static" in head and b"final" in head else "field"
    return kind


def _body(node: Node) -> Node | None:
    """The node holding the body of a definition (searched a few levels down for declarations
    such as ``const f = () => {...}`` or ``type T struct {...}``)."""
    level = [node]
    for _ in range(4):
        nxt: list[Node] = []
        for n in level:
            b = n.child_by_field_name("body")
            if b is not None:
                return b
            if n.type in ("struct_type", "interface_type"):  # Go: the field list is the body
                return n.named_children[0] if n.named_children else n
            nxt.extend(n.named_children[:4])
        level = nxt
    return None


def _signature(text: str) -> str:
    lines = [ln.rstrip() for ln in text.rstrip().split("\n")][:MAX_SIGNATURE_LINES]
    sig = "\n".join(lines)
    return sig[:MAX_SIGNATURE_CHARS]


_COMMENT_MARK = re.compile(r"^\s*(?:///?!?|/\*+!?|\*+|#+|--)\s?")


def _clean_doc(text: str) -> str:
    for line in text.split("\n"):
        line = _COMMENT_MARK.sub("", line).replace("*/", "").strip().strip("\"'").strip()
        if line:
            return line[:200]
    return ""


def _doc(node: Node, body: Node | None, data: bytes, family: str) -> str:
    if family == "python" and body is not None and body.named_children:
        first = body.named_children[0]
        if first.type == "expression_statement" and first.named_children and first.named_children[0].type == "string":
            s = _text(first.named_children[0], data)
            return _clean_doc(s.lstrip("rRbBuUfF").strip("\"'"))
        return ""
    anchor = node
    while anchor.parent is not None and anchor.parent.type in (
            "export_statement", "decorated_definition", "template_declaration", "declaration_list_item"):
        anchor = anchor.parent
    prev = anchor.prev_named_sibling
    if prev is None or "comment" not in prev.type or prev.end_point.row < anchor.start_point.row - 1:
        return ""
    # the first line of a block of adjacent line comments
    while True:
        before = prev.prev_named_sibling
        if before is None or "comment" not in before.type or before.end_point.row < prev.start_point.row - 1:
            break
        prev = before
    return _clean_doc(_text(prev, data))


# -- imports -------------------------------------------------------------------------------------

def _imports(family: str, caps: dict[str, list[Node]], data: bytes) -> list[Import]:
    mod_nodes = caps.get("import.module")
    if not mod_nodes:
        return []
    module = _text(mod_nodes[0], data).strip()
    name = _text(caps["import.name"][0], data) if "import.name" in caps else None
    alias = _text(caps["import.alias"][0], data) if "import.alias" in caps else None
    wildcard = "import.wildcard" in caps
    if family == "java":  # both java patterns match a wildcard import; keep only the wildcard reading
        stmt = caps["import"][0]
        wildcard = wildcard or data[stmt.start_byte:stmt.end_byte].rstrip(b"; \n").endswith(b"*")
    if family == "python":
        if name is None and alias is None and not wildcard:
            # ``import a.b`` binds ``a``: record the module under its first component
            return [Import(module, None, module.split(".")[0])]
        return [Import(module, name, alias, wildcard)]
    if family == "js":
        return [Import(module, name, alias, wildcard)]
    if family == "go":
        path = module.strip("\"`")
        if alias == ".":
            return [Import(path, None, None, True)]
        return [Import(path, None, alias if alias not in (None, "_") else path.rsplit("/", 1)[-1])]
    if family == "java":
        static = b"static" in data[caps["import"][0].start_byte:mod_nodes[0].start_byte]
        if wildcard:
            return [Import(module, None, None, True)]
        head, _, last = module.rpartition(".")
        if static:
            cls_mod, _, cls = head.rpartition(".")
            return [Import(head, last), Import(cls_mod, cls)] if cls_mod else [Import(head, last)]
        return [Import(head, last)] if head else [Import(module)]
    if family == "rust":
        if caps["import"][0].type == "mod_item":
            return [Import(f"self::{module}", None, module)]
        return [Import(m, n, a, w) for m, n, a, w in _use_tree(re.sub(r"\s*([:{},])\s*", r"\1", " ".join(module.split())))]
    if family == "c":
        return [Import(module.strip("\"<>"), None, None, True)]
    return []


def _use_tree(tree: str, base: str = "") -> list[tuple[str, str | None, str | None, bool]]:
    """Expand a Rust use tree (``a::b::{c, d as e, f::*}``) into (module, name, alias, wildcard)."""
    out: list[tuple[str, str | None, str | None, bool]] = []
    brace = tree.find("{")
    if brace >= 0 and tree.endswith("}"):
        prefix = tree[:brace].rstrip(":")
        full = f"{base}::{prefix}" if base and prefix else (base or prefix)
        depth, start, inner = 0, 0, tree[brace + 1:-1]
        for i, ch in enumerate(inner + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                part = inner[start:i]
                start = i + 1
                if part:
                    out.extend(_use_tree(part, full))
        return out
    path, _, alias = tree.partition(" as ")
    path = path.strip()
    full = f"{base}::{path}" if base else path
    mod, _, last = full.rpartition("::")
    if last == "*":
        return [(mod, None, None, True)]
    if last == "self":
        return [(mod, None, alias or mod.rsplit("::", 1)[-1], False)]
    return [(mod, last, alias or None, False)]


def _dedupe(imports: list[Import]) -> tuple[Import, ...]:
    seen: dict[Import, None] = {}
    with_bindings = {i.module for i in imports if i.name or i.alias or i.wildcard}
    for i in imports:
        if not (i.name or i.alias or i.wildcard) and i.module in with_bindings:
            continue  # the bare side-effect form of an import that also binds names
        seen.setdefault(i, None)
    return tuple(seen)
