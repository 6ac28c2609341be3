"""``prepare extend=DIR``: more training repositories added to an earlier prepared data set, its held-out part untouched.

An experiment that asks "does training on more repositories help?" must keep what it measures on
fixed: the same held-out files, the same held-out rows, the same training rows of the original
repositories. Preparing all repositories again does not guarantee that (the held-out split ranks
every kept file's salted hash, so other repositories move the cut; dedup across repositories can
drop a file). So ``prepare NEW... extend=DIR`` prepares only the new repositories, holds none of
their files out, and writes ``DIR``'s training rows followed by the new ones (masks likewise), with
``DIR``'s held-out rows, list and copies as they are. A new file that is an exact or near duplicate
of one of ``DIR``'s held-out files (e.g. a copy of an evaluated package inside another one) is
dropped, with the reason, so held-out code never reaches the training rows.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: what ``DIR`` must hold to be extended
_NEEDED = ("manifest.json", "train.npy", "heldout.npy", "heldout_files.json")
HELD_PREFIX = "held-out of the extended data: "


class ExtendError(ValueError):
    """``DIR`` cannot be extended by these repositories (the message says why)."""


@dataclass
class Base:
    """An earlier ``prepare``'s output, to be extended."""

    path: Path
    manifest: dict

    @classmethod
    def load(cls, path: str | Path, roots: list[Path], names: list[str], *, seq_len: int, samples: str) -> "Base":
        """``DIR``, checked against this prepare: same row length and sample kind, no shared source or name."""
        d = Path(path)
        missing = [n for n in _NEEDED if not (d / n).is_file()]
        if missing:
            raise ExtendError(f"extend={d}: not a prepared data set (no {', '.join(missing)})")
        m = json.loads((d / "manifest.json").read_text())
        if m.get("kind") != "repository" or m["seq_len"] != seq_len or m["config"]["samples"] != samples:
            raise ExtendError(f"extend={d}: prepared with seq_len={m['seq_len']} samples={m['config']['samples']}, "
                              f"not seq_len={seq_len} samples={samples}")
        for root in roots:
            r = root.resolve()
            for s in map(Path, m["sources"]):
                if r == s or r in s.parents or s in r.parents:
                    raise ExtendError(f"extend={d}: {root} overlaps its source {s}")
        shared = set(names) & set(m["repos"])
        if shared:
            raise ExtendError(f"extend={d}: repository name(s) {sorted(shared)} already in it; rename the directory")
        return cls(d, m)

    def heldout_texts(self) -> list[tuple[str, str]]:
        """(label, text) of the held-out files, to be kept ahead of the new files in dedup."""
        spec = json.loads((self.path / "heldout_files.json").read_text())
        root = self.path / spec["root"]
        return [(HELD_PREFIX + k, (root / k).read_text(encoding="utf-8")) for k in spec["files"]]

    def check_vocab(self, vocab_size: int) -> None:
        if vocab_size != self.manifest["vocab_size"]:
            raise ExtendError(f"extend={self.path}: its tokenizer has {self.manifest['vocab_size']} tokens, this one "
                              f"{vocab_size}; use the same tokenizer")

    def write(self, out: Path, train_rows: np.ndarray, train_mask: np.ndarray | None) -> dict:
        """``out``'s train rows (and mask) = ``DIR``'s then these; ``DIR``'s held-out files copied. The
        manifest fields this changes."""
        base_rows = np.load(self.path / "train.npy")
        rows = np.concatenate([base_rows, train_rows.astype(base_rows.dtype)])
        np.save(out / "train.npy", rows)
        if train_mask is not None:
            base_mask = np.load(self.path / "train_mask.npy")
            np.save(out / "train_mask.npy", np.concatenate([base_mask, train_mask.astype(base_mask.dtype)]))
        for f in self.path.glob("heldout*.npy"):  # heldout.npy, its mask, and a trimmed set's -all copies
            shutil.copyfile(f, out / f.name)
        shutil.copyfile(self.path / "heldout_files.json", out / "heldout_files.json")
        spec = json.loads((self.path / "heldout_files.json").read_text())
        if (out / spec["root"]).exists():
            shutil.rmtree(out / spec["root"])
        shutil.copytree(self.path / spec["root"], out / spec["root"])
        m = self.manifest
        return {"train_tokens": int(rows.size), "heldout_tokens": m["heldout_tokens"],
                "heldout_padding_tokens": m.get("heldout_padding_tokens", 0),
                "extends": {"path": str(self.path.resolve()), "sources": m["sources"], "repos": m["repos"],
                            "train_rows": int(len(base_rows)), "new_train_rows": int(len(train_rows)),
                            "train_files": m["train_files"], "heldout_files": m["heldout_files"]}}
