"""Data pipeline: collect -> filter -> (dedup, redact) -> repository samples with FIM -> pack."""
