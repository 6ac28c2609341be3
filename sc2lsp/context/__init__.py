"""Edge code around tree-sitter: syntax checks now, the repository index and context providers later.

Grammars come only from the per-language wheels (``tree_sitter_python``, ...), never downloaded.
Nothing in ``sc2lsp.core`` imports this package; callers pass its functions in.
"""
