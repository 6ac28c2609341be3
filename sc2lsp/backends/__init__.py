"""Model backends. ``base`` defines the protocol; ``llama_cpp`` is the only module importing llama_cpp."""
