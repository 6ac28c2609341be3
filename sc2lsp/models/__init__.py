"""Model tooling: registry (models.toml), pull, convert, quantize."""
