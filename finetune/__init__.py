"""finetune: StarCoder2 data preparation, training and export for sc2lsp."""
