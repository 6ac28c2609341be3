"""Pure core: token names, prompt formats, budgets, post-processing.

Nothing in this package does I/O or imports pygls, lsprotocol, llama_cpp, tree_sitter or torch.
Serving and training both build their strings here, so the FIM format cannot drift.
"""
