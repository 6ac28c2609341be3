"""Turn collected files into repository-format samples with FIM and pack them into sequences.

Samples are built by ``sc2lsp.core.prompt.repository_sample``, the module the server uses for
its prompts.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

import numpy as np

from sc2lsp.core.prompt import SourceFile, repository_sample

from .filters import split_fragments


def make_documents(
    files: Sequence[tuple[str, str]],
    *,
    repo: str,
    seed: int,
    max_chars: int = 1200,
    max_files_per_doc: int = 3,
    fim_rate: float = 0.5,
    spm_rate: float = 0.5,
    metadata_rate: float = 0.5,
    related_rate: float = 0.0,
) -> list[str]:
    """Repository-format documents from ``(path, text)`` pairs.

    Files are cut into fragments of at most ~``max_chars`` (so a FIM example fits a short
    training context); fragments of one directory are grouped, 1..``max_files_per_doc`` per
    document, and each group becomes one ``<repo_name>...<|endoftext|>`` sample.

    With ``related_rate`` > 0, a fragment that uses definitions of other files through its
    imports becomes, with that probability, a sample of its own with the fragments defining them
    first (``related.related_fragments``, up to ``max_files_per_doc - 1``), in that order: what
    the server's prompt looks like. ``related_rate=0`` gives exactly the samples it always did.
    """
    rng = random.Random(seed)
    frags = {path: split_fragments(text, max_chars) for path, text in files}
    docs, taken = [], set()
    if related_rate > 0 and max_files_per_doc > 1:
        from .related import related_fragments

        related = related_fragments(files, frags, max_related=max_files_per_doc - 1)
        for (path, j), deps in sorted(related.items()):
            if rng.random() < related_rate:
                chosen = [SourceFile(p, frags[p][i]) for p, i in deps] + [SourceFile(path, frags[path][j])]
                docs.append(repository_sample(chosen, rng, repo=repo, fim_rate=fim_rate, spm_rate=spm_rate,
                                              metadata_rate=metadata_rate, shuffle=False))
                taken.add((path, j))
    by_dir: dict[str, list[SourceFile]] = defaultdict(list)
    for path, _ in files:
        d = path.rsplit("/", 1)[0] if "/" in path else ""
        for j, frag in enumerate(frags[path]):
            if (path, j) not in taken:
                by_dir[d].append(SourceFile(path, frag))
    for d in sorted(by_dir):
        frags = by_dir[d]
        rng.shuffle(frags)
        i = 0
        while i < len(frags):
            n = rng.randint(1, max_files_per_doc)
            docs.append(
                repository_sample(
                    frags[i : i + n], rng, repo=repo, fim_rate=fim_rate, spm_rate=spm_rate, metadata_rate=metadata_rate
                )
            )
            i += n
    rng.shuffle(docs)
    return docs


def tokenize_documents(tokenizer, docs: Sequence[str]) -> np.ndarray:
    """One flat token stream; special tokens in the text are recognised as such."""
    ids = tokenizer(list(docs), add_special_tokens=False)["input_ids"]
    dtype = np.uint16 if len(tokenizer) <= 65535 else np.uint32
    return np.fromiter((t for seq in ids for t in seq), dtype=dtype)


def pack(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """Cut the stream into ``[n, seq_len]`` rows (the tail that does not fill a row is dropped)."""
    n = len(stream) // seq_len
    return stream[: n * seq_len].reshape(n, seq_len)
