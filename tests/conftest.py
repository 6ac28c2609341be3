"""Session-wide fixtures: a small StarCoder2-convention tokenizer and a tiny random Starcoder2 checkpoint.

Both are built once per test session into a temporary directory (a few seconds in all):

* ``tiny_tokenizer_dir``: ``finetune.tokenizer.train_bpe`` on a handful of stdlib modules,
  vocabulary 1536, saved with ``save_pretrained`` (tokenizer.json + tokenizer_config.json).
* ``tiny_hf_checkpoint``: a ``debug``-shape Starcoder2ForCausalLM (2 layers, hidden 64, tied
  embeddings) with random weights, saved with ``save_pretrained`` (config.json +
  model.safetensors) next to that tokenizer. Its weights are drawn with a larger spread than
  transformers' default init so that its next-token distributions are peaked: greedy decoding
  then has clear winners and comparing backends on it is meaningful.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path

import pytest

# The language server's acceptance statistics (sc2lsp/stats.py) of test sessions never reach the
# user's state directory; a test that checks them sets its own SC2LSP_STATS_FILE.
os.environ.setdefault("SC2LSP_STATS_FILE", os.path.join(tempfile.mkdtemp(prefix="sc2lsp-test-stats-"), "stats.jsonl"))
# Likewise the disk tier of saved KV states: a test session starts with none (no state of an
# earlier run makes a "cold" request warm) and leaves nothing in the user's cache.
os.environ.setdefault("SC2LSP_STATE_DIR", tempfile.mkdtemp(prefix="sc2lsp-test-kv-"))
# And the parsed-symbol cache of workspace indexes (sc2lsp/workspace/symbol_cache.py).
os.environ.setdefault("SC2LSP_SYMBOL_CACHE", tempfile.mkdtemp(prefix="sc2lsp-test-symbols-"))


@pytest.fixture(autouse=True)
def _own_kv_state_dir(tmp_path_factory, monkeypatch):
    """Each test its own disk tier of KV states: a prompt one test warmed is never restored in
    another that expects to evaluate it (e.g. a prompt time cap)."""
    monkeypatch.setenv("SC2LSP_STATE_DIR", str(tmp_path_factory.mktemp("kv-states")))

TOKENIZER_VOCAB = 1536
#: standard deviation of the fixture model's random weights (transformers' default is 0.02)
WEIGHT_STD = 0.15


def _corpus() -> list[str]:
    import argparse
    import json
    import textwrap

    texts = [inspect.getsource(m) for m in (argparse, json.decoder, json.encoder, textwrap)]
    # make sure the byte-level alphabet and digits are exercised
    texts.append("x = 12345\r\n\tnaïve = 'café 😀 漢字 日本語'\n")
    return texts


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A StarCoder2-convention BPE tokenizer directory (specials at ids 0-37, digits split)."""
    from finetune.tokenizer import train_bpe

    out = tmp_path_factory.mktemp("tiny-tokenizer")
    tok = train_bpe(_corpus(), vocab_size=TOKENIZER_VOCAB, show_progress=False)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_hf_checkpoint(tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """A random-weight ``debug``-shape Starcoder2ForCausalLM saved with its tokenizer."""
    import torch

    from finetune.model import build_model
    from finetune.tokenizer import load

    tok = load(tiny_tokenizer_dir)
    model = build_model("debug", vocab_size=len(tok), seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(WEIGHT_STD * torch.randn(p.shape, generator=gen))
    out = tmp_path_factory.mktemp("tiny-hf")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def parses(monkeypatch):
    """The paths of the tree-sitter parses the index and the indexer make (a list, in order)."""
    import sc2lsp.context.index as index_module
    import sc2lsp.workspace.indexer as indexer_module
    from sc2lsp.context.symbols import extract

    seen: list[str] = []

    def counting(path, text, language):
        seen.append(path)
        return extract(path, text, language)

    monkeypatch.setattr(index_module, "extract", counting)
    monkeypatch.setattr(indexer_module, "extract", counting)
    return seen
