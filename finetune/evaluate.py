"""Held-out next-line evaluation through the serving path (GGUF + llama.cpp + the core prompt).

A case is a line of a held-out file: the cursor sits at the start of the line (a prompt ending in
trailing indentation splits whitespace tokens in a way training never showed), the prompt is
the StarCoder2 FIM prompt of the text before and after that line (built by
``sc2lsp.core.prompt.infill_prompt``), and the model's first generated line is compared with the
real one: exact match (whitespace-trimmed) and edit similarity (difflib ratio).
"""

from __future__ import annotations

import difflib
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from sc2lsp.core.prompt import FimMode, infill_prompt
from sc2lsp.core.tokens import STOP_TOKENS


@dataclass(frozen=True)
class Case:
    path: str
    line: int  # 0-based
    prefix: str
    suffix: str
    expected: str


def next_line_cases(
    files: Sequence[tuple[str, str]],
    *,
    per_file: int = 20,
    seed: int = 0,
    max_prefix_chars: int = 800,
    max_suffix_chars: int = 300,
) -> list[Case]:
    """Pick up to ``per_file`` lines per file (non-blank, at least 4 visible characters).

    The window (``max_prefix_chars`` + ``max_suffix_chars``) defaults to about what sc2-tiny was
    trained on (fragments of <= 1,200 characters); longer windows put it out of distribution.
    """
    rng = random.Random(seed)
    cases = []
    for path, text in files:
        lines = text.split("\n")
        candidates = [i for i, ln in enumerate(lines) if len(ln.strip()) >= 4 and i > 0]
        for i in sorted(rng.sample(candidates, min(per_file, len(candidates)))):
            line = lines[i]
            prefix = "\n".join(lines[:i]) + "\n"
            suffix = "\n" + "\n".join(lines[i + 1 :])
            prefix = _keep_tail_lines(prefix, max_prefix_chars)
            suffix = _keep_head_lines(suffix, max_suffix_chars)
            cases.append(Case(path, i, prefix, suffix, line.strip()))
    return cases


def _keep_tail_lines(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.find("\n", len(text) - limit)
    return text[cut + 1 :] if cut >= 0 else text[-limit:]


def _keep_head_lines(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[:cut] if cut > 0 else text[:limit]


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


def evaluate(backend, cases: Sequence[Case], *, mode: FimMode = FimMode.SPM, max_tokens: int = 48) -> dict:
    """Exact match and edit similarity of ``backend``'s first generated line over ``cases``."""
    em, es, gen_tokens, ms = 0, 0.0, 0, 0.0
    samples = []
    for c in cases:
        prompt = infill_prompt(c.prefix, c.suffix, path=c.path, mode=mode)
        g = backend.generate(prompt, max_tokens=max_tokens, stop=(*STOP_TOKENS, "\n"))
        got = first_line(g.text)
        em += got == c.expected
        es += difflib.SequenceMatcher(None, got, c.expected).ratio()
        gen_tokens += g.timings.generated_tokens
        ms += g.timings.total_ms
        if len(samples) < 12:
            samples.append({"path": c.path, "line": c.line + 1, "expected": c.expected, "got": got})
    n = max(1, len(cases))
    return {
        "cases": len(cases),
        "exact_match": round(em / n, 4),
        "edit_similarity": round(es / n, 4),
        "ms_per_case": round(ms / n, 1),
        "samples": samples,
    }


def load_heldout(spec: str | Path) -> list[tuple[str, str]]:
    """``heldout_files.json`` written by data preparation: ``{"root": ..., "files": [...]}``.

    ``root`` is absolute (``prepare-stdlib``) or relative to the JSON file (``prepare``).
    """
    meta = json.loads(Path(spec).read_text())
    root = Path(spec).parent / meta["root"]  # a relative root (``finetune prepare``'s copies) is next to the file
    return [(p, (root / p).read_text(encoding="utf-8")) for p in meta["files"]]
