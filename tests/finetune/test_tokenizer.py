"""StarCoder2 tokenizer conventions: specials at ids 0-37, digits split, byte-level round trip."""

from __future__ import annotations

import json

import pytest

from finetune.tokenizer import TokenizerError, load, train_bpe
from sc2lsp.core.tokens import FIM_PREFIX, SPECIAL_TOKENS

CORPUS = ["def add(a, b):\n    return a + b\n", "class Foo:\n    def __init__(self):\n        self.x = 12345\n"] * 50


@pytest.fixture(scope="module")
def tok():
    return train_bpe(CORPUS, vocab_size=400, show_progress=False)


def test_specials_at_starcoder2_ids(tok):
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(38))
    ids = tok(f"{FIM_PREFIX}x<file_sep>", add_special_tokens=False)["input_ids"]
    assert ids[0] == 1 and ids[-1] == 6  # recognised as single special tokens, no BOS added


@pytest.mark.parametrize("text", ["x = 12345", "\tif a:\r\n  pass  \n", "s = 'naïve 😀 漢字'", "", "<fim_middle>"])
def test_round_trip_and_digits(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    pieces = tok.convert_ids_to_tokens(ids)
    assert all(not (any(c.isdigit() for c in p) and len(p) > 1) for p in pieces if p not in SPECIAL_TOKENS)


def test_save_and_load(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    again = load(tmp_path)
    assert again("def f(): pass")["input_ids"] == tok("def f(): pass")["input_ids"]


def test_rejects_tokenizer_without_fim_tokens(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in ("<fim_prefix>", "<fim_middle>")]
    for t in ("<fim_prefix>", "<fim_middle>"):
        data["model"]["vocab"].pop(t)
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    (tmp_path / "tokenizer_config.json").unlink()
    with pytest.raises(TokenizerError, match="no FIM tokens <fim_prefix>, <fim_middle>"):
        load(tmp_path)


def test_rejects_missing_directory(tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        load(tmp_path / "nope")
