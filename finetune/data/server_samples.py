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
  that too: a file with nothing indexed yet, a budget spent on the file);
* ``copy_weight`` W (default 1): a line whose name is in the context and nowhere in the file part of
  its prompt (the kept prefix and suffix) is drawn W times per epoch (the fractional part as a
  probability; each draw with or without context as above). Those are the lines only the context can
  answer: where a small model can learn to copy a name from the front of its prompt rather than from
  the lines around the cursor or from memory (docs/context.md, "Round 3"). No repository-specific
  rule: the test is the name's whole-word occurrence in the prompt's parts.

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


@dataclass(frozen=True)
class View:
    """What the server would send at a case's cursor, in parts: the kept prefix and suffix (the file
    part) and the context blocks, and where the case's name occurs in them (whole word)."""

    path: str
    prefix: str
    suffix: str
    context: tuple  #: ``SourceFile`` blocks, in the server's order
    name_in_context: bool
    name_in_file: bool

    def prompt(self, repo: str, with_context: bool = True) -> str:
        from sc2lsp.core.prompt import FimMode, infill_prompt

        return infill_prompt(self.prefix, self.suffix, path=self.path, repo=repo,
                             context=self.context if with_context else (), mode=FimMode.SPM)

    @property
    def copy_only(self) -> bool:
        """The name is in the context and not in the file part: only the context can supply it."""
        return self.name_in_context and not self.name_in_file


def _has_word(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text) is not None


def server_view(index, case: Case, *, total: int, count: Callable[[str], int], gather: bool = True) -> View:
    """The server's budget, context gathering (``gather``: else no context) and cut at ``case``'s
    cursor (the file as indexed), through the server's own code."""
    from sc2lsp.commands.context import context_budget
    from sc2lsp.context.gather import assemble, complete_options

    prefix, suffix = cut(index.get(case.path).text, case)
    plan, window = context_budget(prefix, suffix, total=total, count=count)
    ctx: list = []
    if gather:
        res = assemble(index, case.path, prefix + suffix, len(prefix), plan.context_tokens, count=count,
                       window=window, options=complete_options())
        ctx = [b.source_file() for b in res.blocks]
    p, s = plan.cut(prefix, suffix)
    return View(case.path, p, s, tuple(ctx), any(_has_word(case.name, f.code) for f in ctx),
                _has_word(case.name, p) or _has_word(case.name, s))


def server_prompt(index, case: Case, *, repo: str, total: int, count: Callable[[str], int],
                  with_context: bool = True, require_name: bool = False) -> str | None:
    """The prompt the server sends at ``case``'s cursor (the file as indexed), through the
    server's budget, context gathering and prompt code. ``require_name``: None when the context
    the server gathers there does not hold the case's name (whether or not it is then sent)."""
    view = server_view(index, case, total=total, count=count, gather=with_context or require_name)
    if require_name and not view.name_in_context:
        return None
    return view.prompt(repo, with_context)


def draws(rng: random.Random, weight: float) -> int:
    """How many times a sample of weight ``weight`` is drawn: its integer part, plus one with
    probability its fractional part (no random number is used for a whole weight)."""
    whole = int(weight)
    frac = weight - whole
    return whole + (1 if frac > 0 and rng.random() < frac else 0)


def server_samples(files: Sequence[tuple[str, str]], *, repo: str, count: Callable[[str], int], seed: int,
                   total: int = 512, per_file: int = 0, context_rate: float = 0.8, cases_in: set[str] | None = None,
                   require_name: bool = True, copy_weight: float = 1.0,
                   progress: Callable[[int, int], None] | None = None) -> list[tuple[str, str]]:
    """``(prompt, middle)`` for the cross-file lines of ``files`` (of the files in ``cases_in`` only,
    when given; at most ``per_file`` per file, 0 = all), over an index holding ``files`` only.
    ``require_name``: only the lines where the context the server gathers holds the name they use
    (where context can help; most of the others are ``mod.name`` lines the server cannot resolve).
    ``copy_weight``: draws of a line whose name only the context holds (``View.copy_only``; ``draws``)."""
    if copy_weight < 0:
        raise ValueError("copy_weight must be >= 0")
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
                with_context = rng.random() < context_rate  # drawn first: weight 1 gives the samples as before
                view = server_view(index, case, total=total, count=count)
                if require_name and not view.name_in_context:
                    continue
                for k in range(draws(rng, copy_weight) if view.copy_only else 1):
                    out.append((view.prompt(repo, with_context if k == 0 else rng.random() < context_rate),
                                case.target))
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
