"""Convert a Starcoder2 HF checkpoint (or a PEFT LoRA adapter of one) to GGUF for llama.cpp.

``convert_checkpoint(hf_dir, out, type)`` reads ``config.json``, ``tokenizer.json`` and the
safetensors weights tensor by tensor (never the whole model: no torch, no mmap) and writes a
GGUF of architecture ``starcoder2`` with gguf's ``GGUFWriter``. ``f32``/``f16`` are written
directly; ``q8_0``/``q4_k_m`` are written as f32 (f16 for big models) to a temporary file
first and then quantized by llama.cpp's ``llama_model_quantize``. The output appears only when
complete (temporary file + rename), so a failed conversion never leaves a half-written file.

Metadata follows llama.cpp's starcoder2 loader (field notes): hyper-parameters under
``starcoder2.*``; a ``gpt2`` BPE tokenizer with pre-tokenizer ``starcoder``; special tokens
typed CONTROL; merges as ``"a b"`` strings; bos/eos and all six FIM token ids written
explicitly (without ``fim_rep``/``fim_sep`` ``<file_sep>`` does not end generation).

CLI::

    sc2lsp models convert HF_DIR OUT.gguf --type q8_0
    sc2lsp models convert --lora ADAPTER_DIR --base HF_DIR OUT.gguf
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..core.tokens import ENDOFTEXT, FILE_SEP, FIM_MIDDLE, FIM_PAD, FIM_PREFIX, FIM_SUFFIX, FIM_TOKENS, REPO_NAME
from ..errors import UserError
from .gguf_tensors import TensorRef, checkpoint_tensors, load_f32

ARCH = "starcoder2"
TYPES = ("f32", "f16", "q8_0", "q4_k_m")
#: llama_ftype values (llama.h): ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q4_K_M
FTYPES = {"f32": 0, "f16": 1, "q8_0": 7, "q4_k_m": 15}
#: above this many f32 bytes, the file quantized by llama.cpp is written as f16 (halves disk and mmap use)
F32_INTERMEDIATE_MAX = 4 << 30

# token types (llama.h llama_token_type / gguf.TokenType)
NORMAL, USER_DEFINED, CONTROL, UNUSED = 1, 4, 3, 5

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Hparams:
    n_vocab: int
    n_ctx: int
    n_embd: int
    n_layer: int
    n_ff: int
    n_head: int
    n_head_kv: int
    norm_eps: float
    rope_theta: float
    tied: bool


# ----------------------------------------------------------------------------- config / tokenizer


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{path.parent}: no {path.name} ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def check_dir(hf_dir: str | Path, what: str = "HF checkpoint directory") -> Path:
    p = Path(hf_dir)
    if not p.is_dir():
        raise UserError(f"{p}: no such {what}")
    return p


def read_hparams(hf_dir: Path) -> Hparams:
    """Hyper-parameters from ``config.json``; UserError unless it is a Starcoder2ForCausalLM."""
    cfg = read_json(hf_dir / "config.json", "a transformers config is needed")
    archs = cfg.get("architectures") or []
    if cfg.get("model_type") != "starcoder2" or (archs and "Starcoder2ForCausalLM" not in archs):
        found = cfg.get("model_type") or "none"
        raise UserError(
            f"{hf_dir}/config.json describes model_type {found!r} ({', '.join(archs) or 'no architectures'}); "
            "only Starcoder2ForCausalLM (model_type 'starcoder2') can be converted"
        )
    if cfg.get("use_bias", True) is False:
        raise UserError(f"{hf_dir}/config.json has use_bias=false; llama.cpp's starcoder2 needs the biases")
    act = cfg.get("hidden_act", "gelu_pytorch_tanh")
    if act not in ("gelu_pytorch_tanh", "gelu_new", "gelu"):
        raise UserError(f"{hf_dir}/config.json has hidden_act {act!r}; llama.cpp's starcoder2 uses gelu")
    rope = cfg.get("rope_parameters") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    if rope.get("rope_type", "default") != "default":
        raise UserError(f"{hf_dir}/config.json uses rope_type {rope['rope_type']!r}; only default RoPE is supported")
    try:
        n_embd = int(cfg["hidden_size"])
        n_head = int(cfg["num_attention_heads"])
        return Hparams(
            n_vocab=int(cfg["vocab_size"]),
            n_ctx=int(cfg.get("max_position_embeddings", 16384)),
            n_embd=n_embd,
            n_layer=int(cfg["num_hidden_layers"]),
            n_ff=int(cfg["intermediate_size"]),
            n_head=n_head,
            n_head_kv=int(cfg.get("num_key_value_heads") or n_head),
            norm_eps=float(cfg.get("norm_epsilon", cfg.get("layer_norm_epsilon", 1e-5))),
            rope_theta=float(theta),
            tied=bool(cfg.get("tie_word_embeddings", True)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{hf_dir}/config.json: missing or bad hyper-parameter {e}") from None


@dataclass
class Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    ids: dict[str, int]


def read_vocab(hf_dir: Path, n_vocab: int) -> Vocab:
    """Tokens (padded to the embedding rows), types, merges of a byte-level BPE ``tokenizer.json``."""
    tj = read_json(hf_dir / "tokenizer.json", "a tokenizers BPE tokenizer is needed")
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise UserError(f"{hf_dir}/tokenizer.json is not a BPE tokenizer (model type {model.get('type')!r})")
    ids: dict[str, int] = dict(model["vocab"])
    added = {t["content"]: t for t in tj.get("added_tokens", [])}
    for content, t in added.items():
        ids[content] = int(t["id"])
    missing = [t for t in FIM_TOKENS if t not in ids]
    if missing:
        raise UserError(
            f"{hf_dir}/tokenizer.json has no FIM tokens {', '.join(missing)}; it is not a StarCoder2 tokenizer"
        )
    if ENDOFTEXT not in ids:
        raise UserError(f"{hf_dir}/tokenizer.json has no {ENDOFTEXT} token")
    size = max(ids.values()) + 1
    if size > n_vocab:
        raise UserError(f"{hf_dir}: tokenizer has {size} tokens but the model's vocab_size is {n_vocab}")
    tokens: list[str | None] = [None] * n_vocab
    types = [UNUSED] * n_vocab
    for tok, i in ids.items():
        tokens[i] = tok
        if tok in added:
            types[i] = CONTROL if added[tok].get("special", False) else USER_DEFINED
        else:
            types[i] = NORMAL
    tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return Vocab(tokens, types, merges, ids)


# ----------------------------------------------------------------------------- tensors


def tensor_plan(refs: dict[str, TensorRef], hp: Hparams, hf_dir: Path) -> list[tuple[str, TensorRef]]:
    """(gguf name, source tensor) for every tensor to write; UserError on unknown/missing ones."""
    import gguf

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.STARCODER2, hp.n_layer)
    plan = []
    for name, ref in refs.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue
        if name == "lm_head.weight" and hp.tied:
            continue  # the same matrix as the embeddings; llama.cpp reuses token_embd
        new = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise UserError(f"{hf_dir}: unexpected tensor {name} (not part of a Starcoder2ForCausalLM)")
        plan.append((new, ref))
    have = {n for n, _ in plan}
    need = ["token_embd.weight", "output_norm.weight", "output_norm.bias"] + ([] if hp.tied else ["output.weight"])
    for i in range(hp.n_layer):
        for t in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_up", "ffn_down"):
            need += [f"blk.{i}.{t}.weight", f"blk.{i}.{t}.bias"]
    missing = [n for n in need if n not in have]
    if missing:
        raise UserError(f"{hf_dir}: checkpoint lacks {len(missing)} tensors, e.g. {', '.join(missing[:3])}")
    emb = dict(plan)["token_embd.weight"]
    if emb.shape != (hp.n_vocab, hp.n_embd):
        raise UserError(f"{hf_dir}: embeddings are {emb.shape}, config says ({hp.n_vocab}, {hp.n_embd})")
    order = {n: k for k, n in enumerate(need)}
    return sorted(plan, key=lambda p: order.get(p[0], len(order)))


def out_dtype(shape: tuple[int, ...], float_type: str) -> type:
    """f16 for matrices when ``float_type`` is f16; norms and biases always f32 (as llama.cpp does)."""
    return np.float16 if float_type == "f16" and len(shape) >= 2 else np.float32


# ----------------------------------------------------------------------------- writing


@contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """A temporary path next to ``out``; renamed to ``out`` only if the block succeeds.

    An OSError (unwritable directory, full disk) becomes a UserError naming ``out``.
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        os.close(fd)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e}") from None
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_gguf(hf_dir: Path, out: Path, float_type: str, progress: Progress | None = None) -> None:
    """Write an f32/f16 GGUF of ``hf_dir`` to ``out`` (not atomic; see ``convert_checkpoint``)."""
    import gguf

    hp = read_hparams(hf_dir)
    vocab = read_vocab(hf_dir, hp.n_vocab)
    plan = tensor_plan(checkpoint_tensors(hf_dir), hp, hf_dir)

    w = gguf.GGUFWriter(out, ARCH)
    w.add_name(hf_dir.resolve().name)
    w.add_file_type(FTYPES[float_type])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_layer_norm_eps(hp.norm_eps)
    w.add_rope_freq_base(hp.rope_theta)
    w.add_vocab_size(hp.n_vocab)
    add_tokenizer(w, vocab)

    for name, ref in plan:
        dt = np.dtype(out_dtype(ref.shape, float_type))
        w.add_tensor_info(name, ref.shape, dt, int(np.prod(ref.shape)) * dt.itemsize)
    w.write_header_to_file(out)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    t0 = time.time()
    for k, (name, ref) in enumerate(plan):
        arr = load_f32(ref)
        if not np.isfinite(arr).all():
            raise UserError(f"{hf_dir}: tensor {ref.name} contains NaN or infinite values")
        arr = arr.astype(out_dtype(ref.shape, float_type), copy=False)
        w.write_tensor_data(arr)
        del arr
        if progress:
            progress(f"[{k + 1}/{len(plan)}] {name} {ref.shape} {time.time() - t0:.1f}s")
    w.close()


def add_tokenizer(w, vocab: Vocab) -> None:
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("starcoder")
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    w.add_token_merges(vocab.merges)
    eot = vocab.ids[ENDOFTEXT]
    w.add_bos_token_id(eot)
    w.add_eos_token_id(eot)
    w.add_pad_token_id(eot)
    w.add_add_bos_token(False)  # StarCoder2 adds no BOS
    w.add_add_eos_token(False)
    fim = {"pre": FIM_PREFIX, "suf": FIM_SUFFIX, "mid": FIM_MIDDLE, "pad": FIM_PAD, "rep": REPO_NAME, "sep": FILE_SEP}
    for key, tok in fim.items():
        w.add_uint32(f"tokenizer.ggml.fim_{key}_token_id", vocab.ids[tok])


def quantize_gguf(src: Path, dst: Path, type_: str, nthread: int = 0) -> None:
    """Quantize the f32/f16 GGUF ``src`` to ``dst`` with llama.cpp (q8_0 or q4_k_m)."""
    import ctypes

    import llama_cpp
    from llama_cpp import _logger

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[type_]
    params.nthread = nthread
    level = _logger.logger.level
    _logger.set_verbose(False)  # llama.cpp prints one line per tensor otherwise
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    finally:
        _logger.logger.setLevel(level)
    if rc != 0:
        raise UserError(f"llama.cpp failed to quantize {src} to {type_} (code {rc})")


def convert_checkpoint(
    hf_dir: str | Path, out: str | Path, type: str = "q8_0", *, progress: Progress | None = None, nthread: int = 0
) -> Path:
    """Convert the Starcoder2 HF checkpoint ``hf_dir`` to the GGUF ``out`` of ``type``.

    ``type``: f32, f16, q8_0 or q4_k_m. Returns ``out``. Raises UserError on bad input; ``out``
    is only created (or replaced) when the conversion succeeds.
    """
    if type not in TYPES:
        raise UserError(f"unknown GGUF type {type!r}; choose one of {', '.join(TYPES)}")
    hf_dir, out = check_dir(hf_dir), Path(out)
    if out.is_dir():
        raise UserError(f"{out} is a directory; give the output .gguf file name")
    with atomic_output(out) as tmp:
        if type in ("f32", "f16"):
            write_gguf(hf_dir, tmp, type, progress)
        else:
            hp = read_hparams(hf_dir)
            f32_bytes = 4 * hp.n_layer * (4 * hp.n_embd * hp.n_embd + 2 * hp.n_embd * hp.n_ff) + 4 * hp.n_vocab * hp.n_embd
            inter = "f32" if f32_bytes <= F32_INTERMEDIATE_MAX else "f16"
            src = tmp.with_name(tmp.name + f".{inter}")
            try:
                write_gguf(hf_dir, src, inter, progress)
                if progress:
                    progress(f"quantizing {inter} -> {type}")
                quantize_gguf(src, tmp, type, nthread)
            finally:
                src.unlink(missing_ok=True)
    return out
