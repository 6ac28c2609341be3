"""The one table of file extensions: which LSP ``languageId`` a file has when no editor said.

Used for documents read from disk (``sc2lsp/attribution`` on a closed file, ``sc2lsp complete``)
and by the repository index (``context.languages.language_for`` maps the id to its grammar).
"""

from __future__ import annotations

import os
import re

#: file extension (lower case, with the dot) -> LSP languageId
LANGUAGE_IDS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascriptreact",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "typescriptreact",
    ".go": "go", ".rs": "rust", ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".h++": "cpp", ".ipp": "cpp", ".tpp": "cpp",
    ".rb": "ruby", ".sh": "shellscript", ".md": "markdown",
}


#: What only C++ writes, at a line start: a C header parsed as C++ loses nothing, a C++ header
#: parsed as C loses most of its definitions (fmt's format.h: 185 of 435).
_CPP_ONLY = re.compile(r"^[ \t]*(?:namespace\s+[\w:]*\s*\{|template\s*<|using\s+namespace\s|"
                       r"class\s+\w+(?:\s+final)?\s*[:{]|struct\s+\w+(?:\s+final)?\s*:\s*(?:public|private|protected)\s|"
                       r"(?:public|private|protected)\s*:|#\s*include\s*<(?:string|vector|memory|map|iostream|"
                       r"utility|type_traits|cstdint|cstddef|cstdio|cstring|algorithm|functional)>)", re.M)


def is_cpp_header(text: str) -> bool:
    """Whether a ``.h`` file is C++ (its first 64 KB hold a construct only C++ has)."""
    return _CPP_ONLY.search(text, 0, 65536) is not None


def language_id_for_path(path: str | os.PathLike, text: str | None = None) -> str:
    """The LSP languageId of a file by its extension ("" when unknown); a ``.h`` file is ``cpp``
    when its ``text`` is given and says so (``is_cpp_header``), else ``c``."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".h" and text is not None and is_cpp_header(text):
        return "cpp"
    return LANGUAGE_IDS.get(ext, "")
