"""sc2lsp: StarCoder2 inline completions over LSP, fine-tuning and attribution, all local."""

__version__ = "0.1.0"
