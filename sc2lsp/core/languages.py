"""The one table of file extensions: which LSP ``languageId`` a file has when no editor said.

Used for documents read from disk (``sc2lsp/attribution`` on a closed file, ``sc2lsp complete``)
and by the repository index (``context.languages.language_for`` maps the id to its grammar).
"""

from __future__ import annotations

import os

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


def language_id_for_path(path: str | os.PathLike) -> str:
    """The LSP languageId of a file by its extension ("" when unknown)."""
    return LANGUAGE_IDS.get(os.path.splitext(os.fspath(path))[1].lower(), "")
