"""Starcoder2ForCausalLM of any size from a named shape preset."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import TrainError

#: the linear modules of a Starcoder2 layer that LoRA may adapt (it has no gate/up/down_proj)
STARCODER2_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj")

SHAPES: dict[str, dict] = {
    # the embedded model built and shipped by this project
    "sc2-tiny": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=1024, rope_theta=10000.0, max_position_embeddings=2048, tie_word_embeddings=True),
    # a few-layer shape for fast tests
    "debug": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128, rope_theta=10000.0, max_position_embeddings=1024, tie_word_embeddings=True),
    # the released StarCoder2 shapes (field notes; transformers models/starcoder2)
    "starcoder2-3b": dict(hidden_size=3072, num_hidden_layers=30, num_attention_heads=24, num_key_value_heads=2,
                          intermediate_size=12288, rope_theta=999999.442, max_position_embeddings=16384,
                          tie_word_embeddings=True),
    "starcoder2-7b": dict(hidden_size=4608, num_hidden_layers=32, num_attention_heads=36, num_key_value_heads=4,
                          intermediate_size=18432, rope_theta=1e6, max_position_embeddings=16384,
                          tie_word_embeddings=True),
    "starcoder2-15b": dict(hidden_size=6144, num_hidden_layers=40, num_attention_heads=48, num_key_value_heads=4,
                           intermediate_size=24576, rope_theta=1e5, max_position_embeddings=16384,
                           tie_word_embeddings=False),
}


@dataclass
class ShapeConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool


def starcoder2_config(shape: str | dict, vocab_size: int):
    """A transformers ``Starcoder2Config``; specials follow StarCoder2 (``<|endoftext|>`` = id 0)."""
    from transformers import Starcoder2Config

    if isinstance(shape, str):
        if shape not in SHAPES:
            raise ValueError(f"unknown model shape {shape!r}; known: {', '.join(SHAPES)}")
        shape = SHAPES[shape]
    s = asdict(ShapeConfig(**shape))
    theta = s.pop("rope_theta")
    return Starcoder2Config(
        vocab_size=vocab_size,
        hidden_act="gelu_pytorch_tanh",
        norm_epsilon=1e-5,
        use_bias=True,
        sliding_window=None,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        attention_dropout=0.0,
        residual_dropout=0.0,
        embedding_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        initializer_range=0.02,
        architectures=["Starcoder2ForCausalLM"],
        **s,
    )


def build_model(shape: str | dict, vocab_size: int, seed: int = 0):
    import torch
    from transformers import Starcoder2ForCausalLM

    torch.manual_seed(seed)
    return Starcoder2ForCausalLM(starcoder2_config(shape, vocab_size))


def check_base(path: str | Path) -> dict:
    """The base checkpoint's config, or a TrainError saying why it cannot be fine-tuned here."""
    cfg_file = Path(path) / "config.json"
    if not cfg_file.is_file():
        raise TrainError(f"base checkpoint {path}: no config.json (expected an HF Starcoder2 directory)")
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("model_type") != "starcoder2":
        raise TrainError(f"base checkpoint {path} is a {cfg.get('model_type')!r} model, not Starcoder2")
    return cfg
