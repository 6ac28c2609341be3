"""StarCoder2 prompt formats: repository format and fill-in-the-middle (PSM and SPM).

The same functions build the server's infill prompts and the training samples of
``finetune``, so the two can never disagree about the format.

Repository format (StarCoder2 paper, sec. 5)::

    <repo_name>{repo}<file_sep>{path}\n{code}<file_sep>{path}\n{code}...<|endoftext|>

FIM, applied to one file fragment (the text after a ``<file_sep>``)::

    PSM: <fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>{middle}
    SPM: <fim_prefix><fim_suffix>{suffix}<fim_middle>{prefix}{middle}

SPM puts the prefix last: while the user types, only the end of the prompt changes, so the
KV cache of everything before it is reused.

Line endings: every text enters a prompt with ``\r\n`` written ``\n``, in serving and training
alike, so a file saved with Windows line endings is the same prompt as its LF twin (the ``\r``
tokens made it ~9% longer and changed the model's suggestion). The server's post-processing
writes the suggestion back with the document's line endings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

from .tokens import ENDOFTEXT, FILE_SEP, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, REPO_NAME


class FimMode(str, Enum):
    PSM = "psm"
    SPM = "spm"


@dataclass(frozen=True)
class SourceFile:
    """A file (or a fragment of one) as it appears in a repository-format prompt."""

    path: str | None
    code: str


def lf(text: str) -> str:
    """``text`` with Windows line endings written as ``\n`` (a lone ``\r`` is kept)."""
    return text.replace("\r\n", "\n") if "\r" in text else text


def repo_header(repo: str) -> str:
    return f"{REPO_NAME}{repo}"


def file_fragment(code: str, path: str | None = None) -> str:
    """The text that follows a ``<file_sep>``: ``path\\ncode``, or just ``code``."""
    return f"{path}\n{lf(code)}" if path else lf(code)


def file_block(code: str, path: str | None = None) -> str:
    return FILE_SEP + file_fragment(code, path)


def fim_string(prefix: str, suffix: str, mode: FimMode = FimMode.SPM, middle: str = "") -> str:
    """One FIM-formatted fragment; ``middle`` is empty at inference time."""
    prefix, suffix, middle = lf(prefix), lf(suffix), lf(middle)
    if FimMode(mode) is FimMode.PSM:
        return f"{FIM_PREFIX}{prefix}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}{middle}"
    return f"{FIM_PREFIX}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}{prefix}{middle}"


def context_head(repo: str | None = None, context: Sequence[SourceFile] = ()) -> str:
    """The stable front of an infill prompt: repository name and context files."""
    head = repo_header(repo) if repo else ""
    return head + "".join(file_block(f.code, f.path) for f in context)


def infill_prompt(
    prefix: str,
    suffix: str,
    *,
    path: str | None = None,
    repo: str | None = None,
    context: Sequence[SourceFile] = (),
    mode: FimMode = FimMode.SPM,
) -> str:
    """The prompt for completing at the cursor of file ``path``.

    ``<repo_name>r<file_sep>ctx_path\\nctx...<file_sep>`` followed by the FIM form of
    ``path\\nprefix`` / ``suffix``. The path belongs to the prefix, as it did in training.
    """
    return context_head(repo, context) + FILE_SEP + fim_string(file_fragment(prefix, path), suffix, mode)


def fim_transform(fragment: str, rng: random.Random, *, spm_rate: float = 0.5) -> str:
    """Split ``fragment`` at two character positions drawn uniformly and FIM-format it."""
    a, b = sorted((rng.randint(0, len(fragment)), rng.randint(0, len(fragment))))
    mode = FimMode.SPM if rng.random() < spm_rate else FimMode.PSM
    return fim_string(fragment[:a], fragment[b:], mode, middle=fragment[a:b])


def repository_sample(
    files: Sequence[SourceFile],
    rng: random.Random,
    *,
    repo: str | None = None,
    fim_rate: float = 0.5,
    spm_rate: float = 0.5,
    metadata_rate: float = 0.5,
    shuffle: bool = True,
) -> str:
    """One training document in StarCoder2's repository format.

    Files are shuffled (``shuffle=False``: kept in the given order, e.g. the files a file uses
    before it, as the server's prompt has them); with probability ``1 - metadata_rate`` the repository name and paths
    are left out (``<file_sep>code1<file_sep>code2``); each file fragment is FIM-transformed
    with probability ``fim_rate`` (the ``<repo_name>`` part never is).
    """
    files = list(files)
    if shuffle:
        rng.shuffle(files)
    metadata = rng.random() < metadata_rate
    parts = [repo_header(repo)] if (metadata and repo) else []
    for f in files:
        fragment = file_fragment(f.code, f.path if metadata else None)
        if rng.random() < fim_rate:
            fragment = fim_transform(fragment, rng, spm_rate=spm_rate)
        parts.append(FILE_SEP + fragment)
    return "".join(parts) + ENDOFTEXT
