"""Prepare the sc2-tiny pretraining data: the Python standard library in StarCoder2 format.

Writes ``OUT/tokenizer/``, ``OUT/train.npy`` and ``OUT/heldout.npy`` (``[rows, seq_len]``
token ids), ``OUT/heldout_files.json`` and ``OUT/manifest.json`` (every file kept or dropped and
why; token counts).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import tokenizer as tokmod
from .data.collect import STDLIB_EXCLUDE, collect, is_heldout, stdlib_root
from .data.pack import make_documents, pack, tokenize_documents
from .paths import project_path


@dataclass
class StdlibDataConfig:
    out: str = str(project_path("runs/stdlib-data"))
    vocab_size: int = 8192
    seq_len: int = 1024
    epochs: int = 3  #: passes over the files, each with fresh FIM splits and groupings
    heldout_fraction: float = 0.03
    max_chars: int = 1200
    seed: int = 1234
    tokenizer: str = ""  #: an existing tokenizer directory; "" = train one on the training files
    root: str = ""  #: a source tree to use instead of the stdlib ("" = this interpreter's stdlib)
    max_files: int = 0  #: keep only the first N files (0 = all); for quick tests


def prepare(cfg: StdlibDataConfig) -> dict:
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(cfg.root) if cfg.root else stdlib_root()
    files = collect(root, (".py",), STDLIB_EXCLUDE)
    if cfg.max_files:
        files = files[: cfg.max_files]
    kept = [(f.path, f.text) for f in files if f.text is not None]
    train = [(p, t) for p, t in kept if not is_heldout(p, cfg.heldout_fraction)]
    held = [(p, t) for p, t in kept if is_heldout(p, cfg.heldout_fraction)]
    print(f"collected {len(files)} files from {root}: {len(train)} train, {len(held)} held out, "
          f"{len(files) - len(kept)} dropped")

    if cfg.tokenizer:
        tok = tokmod.load(cfg.tokenizer)
    else:
        tok = tokmod.train_bpe((t for _, t in train), vocab_size=cfg.vocab_size, show_progress=False)
    tok.save_pretrained(out / "tokenizer")

    streams = []
    for epoch in range(cfg.epochs):
        docs = make_documents(train, repo="cpython", seed=cfg.seed + epoch, max_chars=cfg.max_chars)
        streams.append(tokenize_documents(tok, docs))
    train_rows = pack(np.concatenate(streams), cfg.seq_len)
    held_docs = make_documents(held, repo="cpython", seed=cfg.seed - 1, max_chars=cfg.max_chars)
    held_rows = pack(tokenize_documents(tok, held_docs), cfg.seq_len)
    np.save(out / "train.npy", train_rows)
    np.save(out / "heldout.npy", held_rows)
    (out / "heldout_files.json").write_text(json.dumps({"root": str(root), "files": [p for p, _ in held]}, indent=1))
    manifest = {
        "source": str(root),
        "license": "PSF-2.0 (Python standard library)",
        "vocab_size": len(tok),
        "seq_len": cfg.seq_len,
        "epochs": cfg.epochs,
        "train_tokens": int(train_rows.size),
        "heldout_tokens": int(held_rows.size),
        "files": [
            {"path": f.path, "kept": f.text is not None, "reason": f.reason,
             "split": None if f.text is None else ("heldout" if is_heldout(f.path, cfg.heldout_fraction) else "train")}
            for f in files
        ],
        "seconds": round(time.time() - t0, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"train {train_rows.shape} heldout {held_rows.shape} tokens; {manifest['seconds']} s -> {out}")
    return manifest
