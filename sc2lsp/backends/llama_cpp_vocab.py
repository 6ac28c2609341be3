"""A GGUF's tokenizer without its weights (llama.cpp ``vocab_only``): how a remote backend counts
prompt tokens exactly, in process, when the model's GGUF is on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def vocab_tokenizer(model_path: str | Path) -> Callable[[str], list[int]]:
    """``tokenize(text)`` with the GGUF's vocabulary, special tokens recognised, no BOS."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    return lambda text: llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
