"""Server-format samples: exactly the prompt the server sends, then the line it should complete.

Repository-format samples (``pack.make_documents``) show a model whole fragments; the server
sends something else: its rendered definition blocks (``sc2lsp.context``) before the FIM form of
the file at the cursor. A small model does not learn to copy a name from the front of its prompt
from the former (docs/context.md, "Does context help completions"). These samples are the latter:

* the cases: lines of a file that use a name defined in another file, reached through the file's
  imports (``from m import name``, or ``mod.name`` with ``import m as mod``), and defined by 1-3
  other files (``cross_file_lines``); the cursor sits at the line's first non-blank character and
  the middle is the rest of the line (what ``bench/context_lift.py`` evaluates);
* the prompt: the server's own code, so the formats cannot drift: ``context_budget`` (the engine's
  ``plan_budget`` with ``total`` tokens of text), ``gather.prepare`` + ``gather.assemble`` with
  every provider run to the end (what a warm-up commits) over an index of the given files only
  (the training files: no held-out file can reach a training prompt), and ``infill_prompt`` (SPM);
* only the lines where that context holds the name they use (``require_name``: where context can
  help; on networkx 10% of the lines, most others are ``nx.name`` through star imports the server
  does not resolve);
* with probability ``1 - context_rate`` the same prompt without context blocks (the server sends
  that too: a file with nothing indexed yet, a budget spent on the file).

A sample is ``(prompt, middle)``; ``pack_masked`` packs their tokens into rows with a loss mask
that is 1 on the middle, the ``<|endoftext|>`` after it and the prompt's last token (the server's
token healing makes the model generate it again) only (the loop's ``loss_mask``).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from sc2lsp.core.tokens import ENDOFTEXT

USE_KINDS = frozenset({"function", "method", "class", "struct", "interface", "enum", "type", "impl"})
NAME = re.compile(r"(?:([A-Za-z_][\w]*)\.)?([A-Za-z_][\w]*)")
#: lines that are no completion of a use: imports, comments, docstring quotes, decorators' module lines
SKIP_LINE = re.compile(r"^\s*(?:import\b|from\b|#|\"\"\"|''')")
#: names, commas and brackets only: the inside of a multi-line import or a tuple of names
NAMES_ONLY = re.compile(r"[\s\w,()]*")


@dataclass(frozen=True)
class Case:
    path: str
    line: int  #: 0-based
    col: int  #: characters of indentation kept in the prefix
    name: str  #: the cross-file name the line uses
    target: str  #: the rest of the line (the middle)


def _docstring_lines(lines: Sequence[str]) -> set[int]:
    """Lines inside (or opening/closing) triple-quoted strings, by a line-level quote count."""
    out, inside = set(), False
    for i, line in enumerate(lines):
        odd = (line.count('"""') + line.count("'''")) % 2 == 1
        if inside or odd:
            out.add(i)
        if odd:
            inside = not inside
    return out


def cross_file_lines(index, path: str, *, max_defs: int = 3) -> list[Case]:
    """The lines of indexed file ``path`` that use, through its imports, a name (function, class,
    method...) that 1..``max_defs`` other indexed files define; one case per line (its first such
    name)."""
    entry = index.get(path)
    if entry is None:
        return []
    syms = entry.symbols
    names = {i.binding for i in syms.imports if i.name and i.binding}  #: from m import name
    qualifiers = {i.binding for i in syms.imports if i.binding}  #: mod.name, Class.method
    starts = {d.start_line for d in syms.definitions}
    skip = _docstring_lines(entry.lines)
    defined: dict[str, bool] = {}

    def elsewhere(name: str) -> bool:
        if name not in defined:
            files = {d.path for d in index.definitions_named(name) if d.kind in USE_KINDS and d.path != path}
            defined[name] = 1 <= len(files) <= max_defs
        return defined[name]

    out = []
    for ln, line in enumerate(entry.lines):
        if ln in starts or ln in skip or not line.strip() or len(line) > 200 or SKIP_LINE.match(line) \
                or NAMES_ONLY.fullmatch(line.split("#", 1)[0]):
            continue
        col = len(line) - len(line.lstrip())
        for m in NAME.finditer(line):
            qual, name = m.groups()
            if len(name) < 3 or line[m.start() - 1:m.start()] in ("'", '"'):
                continue
            if (name in names or qual in qualifiers) and elsewhere(name):
                out.append(Case(path, ln, col, name, line[col:].rstrip()))
                break
    return out


def cut(text: str, case: Case) -> tuple[str, str]:
    """(prefix, suffix) at the case's cursor: the lines before, the indentation; the next lines."""
    lines = text.split("\n")
    prefix = "\n".join(lines[:case.line] + [lines[case.line][:case.col]])
    suffix = "\n" + "\n".join(lines[case.line + 1:])
    return prefix, suffix


def server_prompt(index, case: Case, *, repo: str, total: int, count: Callable[[str], int],
                  with_context: bool = True, require_name: bool = False) -> str | None:
    """The prompt the server sends at ``case``'s cursor (the file as indexed), through the
    server's budget, context gathering and prompt code. ``require_name``: None when the context
    the server gathers there does not hold the case's name (whether or not it is then sent)."""
    from sc2lsp.commands.context import context_budget
    from sc2lsp.context.gather import assemble, complete_options
    from sc2lsp.core.prompt import FimMode, infill_prompt

    prefix, suffix = cut(index.get(case.path).text, case)
    plan, window = context_budget(prefix, suffix, total=total, count=count)
    ctx = []
    if with_context or require_name:
        res = assemble(index, case.path, prefix + suffix, len(prefix), plan.context_tokens, count=count,
                       window=window, options=complete_options())
        ctx = [b.source_file() for b in res.blocks]
        if require_name and not any(re.search(rf"\b{re.escape(case.name)}\b", f.code) for f in ctx):
            return None
        ctx = ctx if with_context else []
    p, s = plan.cut(prefix, suffix)
    return infill_prompt(p, s, path=case.path, repo=repo, context=ctx, mode=FimMode.SPM)


def server_samples(files: Sequence[tuple[str, str]], *, repo: str, count: Callable[[str], int], seed: int,
                   total: int = 512, per_file: int = 0, context_rate: float = 0.8, cases_in: set[str] | None = None,
                   require_name: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> list[tuple[str, str]]:
    """``(prompt, middle)`` for the cross-file lines of ``files`` (of the files in ``cases_in`` only,
    when given; at most ``per_file`` per file, 0 = all), over an index holding ``files`` only.
    ``require_name``: only the lines where the context the server gathers holds the name they use
    (where context can help; most of the others are ``mod.name`` lines the server cannot resolve)."""
    from sc2lsp.context.gather import prepare
    from sc2lsp.context.index import RepoIndex

    index = RepoIndex()
    for path, text in files:
        index.apply_change(path, text)
    rng = random.Random(seed)
    out = []
    paths = [p for p, _ in files if p in index and (cases_in is None or p in cases_in)]
    for k, path in enumerate(paths):
        cases = cross_file_lines(index, path)
        if per_file and len(cases) > per_file:
            cases = sorted(rng.sample(cases, per_file), key=lambda c: c.line)
        if cases:
            index.open(path)
            prepare(index, path, count=count)
            for case in cases:
                prompt = server_prompt(index, case, repo=repo, total=total, count=count,
                                       with_context=rng.random() < context_rate, require_name=require_name)
                if prompt is not None:
                    out.append((prompt, case.target))
            index.close(path)
        if progress:
            progress(k + 1, len(paths))
    rng.shuffle(out)
    return out


def pack_masked(tokenizer, samples: Sequence[tuple[str, str]], seq_len: int,
                heal: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    """``(rows [n, seq_len], mask [n, seq_len] uint8, samples dropped)``: each sample's tokens
    (prompt, then middle + ``<|endoftext|>``) whole in one row, rows filled in order and padded with
    ``<|endoftext|>``; the mask is 1 on the middle, its ``<|endoftext|>`` and the prompt's last
    ``heal`` tokens (the server heals the prompt's last token, the indentation here: the model
    generates it again), 0 elsewhere. A sample longer than a row is dropped (counted)."""
    pad = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    dtype = np.uint16 if len(tokenizer) <= 65535 else np.uint32
    if not samples:
        return np.zeros((0, seq_len), dtype=dtype), np.zeros((0, seq_len), dtype=np.uint8), 0
    prompts = tokenizer([p for p, _ in samples], add_special_tokens=False)["input_ids"]
    middles = tokenizer([m + ENDOFTEXT for _, m in samples], add_special_tokens=False)["input_ids"]
    rows, masks, row, mask, dropped = [], [], [], [], 0

    def flush() -> None:
        rows.append(row + [pad] * (seq_len - len(row)))
        masks.append(mask + [0] * (seq_len - len(mask)))

    for p, m in zip(prompts, middles):
        n = len(p) + len(m)
        if n > seq_len:
            dropped += 1
            continue
        if len(row) + n > seq_len:
            flush()
            row, mask = [], []
        k = min(heal, len(p))
        row, mask = row + p + m, mask + [0] * (len(p) - k) + [1] * (k + len(m))
    if row:
        flush()
    if not rows:
        return np.zeros((0, seq_len), dtype=dtype), np.zeros((0, seq_len), dtype=np.uint8), dropped
    return np.asarray(rows, dtype=dtype), np.asarray(masks, dtype=np.uint8), dropped
