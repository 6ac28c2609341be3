"""A GGUF's tokenizer without its weights (llama.cpp ``vocab_only``): how a remote backend counts
prompt tokens when its server cannot. A ``llama_cpp*`` module: one of the few that import llama_cpp."""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def vocab_tokenizer(model_path: str | Path) -> Callable[[str], list[int]]:
    """The tokenizer of a GGUF alone (``vocab_only``: no weights loaded), special tokens recognised;
    a remote backend counts prompt tokens with it when the server cannot."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    return lambda text: llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
