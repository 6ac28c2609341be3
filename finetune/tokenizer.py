"""StarCoder2-convention tokenizers: train a byte-level BPE, or load an existing one.

A StarCoder2 tokenizer is a byte-level BPE whose 38 special tokens sit at ids 0-37 in a fixed
order, with a pre-tokenizer that splits every digit and then applies ByteLevel (llama.cpp
calls this pre-tokenizer ``starcoder``). No BOS is added.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from sc2lsp.core.tokens import ENDOFTEXT, FIM_TOKENS, SPECIAL_TOKENS


class TokenizerError(ValueError):
    """The tokenizer does not follow StarCoder2's conventions."""


def new_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def train_bpe(texts: Iterable[str], vocab_size: int = 8192, show_progress: bool = True) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of ``vocab_size`` tokens with the 38 specials at ids 0-37."""
    tok = new_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=show_progress,
    )
    tok.train_from_iterator(_nonempty(texts), trainer=trainer)
    return wrap(tok)


def _nonempty(texts: Iterable[str]) -> Iterator[str]:
    return (t for t in texts if t)


def wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """A transformers tokenizer around ``tok`` with StarCoder2's token roles."""
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        unk_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        clean_up_tokenization_spaces=False,
        model_max_length=16384,
    )
    check(hf)
    return hf


def check(hf: PreTrainedTokenizerFast) -> None:
    """Raise TokenizerError unless ``hf`` has the special tokens at StarCoder2's ids."""
    vocab = hf.get_vocab()
    missing = [t for t in FIM_TOKENS if t not in vocab]
    if missing:
        raise TokenizerError(f"tokenizer has no FIM tokens {', '.join(missing)}; it cannot be used for StarCoder2 FIM")
    wrong = [f"{t} (id {vocab.get(t)}, expected {i})" for i, t in enumerate(SPECIAL_TOKENS) if vocab.get(t) != i]
    if wrong:
        raise TokenizerError("special tokens not at StarCoder2's ids: " + "; ".join(wrong[:5]))


def load(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer directory (``tokenizer.json`` + config) and check its conventions."""
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise TokenizerError(f"{path}: no tokenizer.json")
    hf = PreTrainedTokenizerFast.from_pretrained(str(path))
    check(hf)
    return hf
