"""``python -m finetune prepare REPO... --out DATA``: a private repository as StarCoder2 training data.

Steps: scan with the server's rules (``sc2lsp.workspace.scan``: ignore files, secret files,
vendored/binary/generated/minified, size) -> source extensions -> The Stack v2 filters
(``data.filters``) -> exact + near dedup (``data.dedup``) -> secret/PII redaction
(``sc2lsp.core.redact``) -> held-out split by file -> repository-format samples with FIM
(``data.pack.make_documents`` -> ``sc2lsp.core.prompt.repository_sample``) -> tokens -> packed rows.

Writes the layout of ``prepare_stdlib`` so the trainers and ``eval`` read both: ``tokenizer/``,
``train.npy``, ``heldout.npy``, ``heldout_files.json`` + ``heldout/`` (copies of the held-out
texts, so eval does not need the repository), ``manifest.json`` (every file kept or dropped and
why; token counts) and ``DATASHEET.md``.

It also writes ``attribution/``: the attribution index (``sc2lsp.attribution``) of the kept files
as the model sees them (after redaction; text stored in the index, so it still verifies when the
repository moves), each with its repository, revision, repository-relative path, root directory
(so the server excludes it while you work in that repository) and license.
``python -m finetune export`` ships it next to the GGUF and links it in models.toml.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from sc2lsp.core.tokens import ENDOFTEXT
from sc2lsp.workspace.scan import MAX_BYTES, is_source_path, scan

from .data.dedup import NUM_PERM, THRESHOLD, dedup
from .data.filters import reject_reason
from .data.pack import make_documents, pack, tokenize_documents
from sc2lsp.core.redact import redact
from .paths import project_path, user_run


class PrepareError(ValueError):
    """The input cannot make a data set (the message says why)."""


@dataclass
class RepoDataConfig:
    """Preparing one or more repositories for fine-tuning."""

    out: str = user_run("repo-data")  #: output directory (default: the user's cache, never the cwd)
    tokenizer: str = str(project_path("models/sc2-tiny/hf"))  #: a StarCoder2-convention tokenizer directory (the base model's)
    seq_len: int = 512  #: tokens per packed row
    epochs: int = 4  #: passes over the training files, each with fresh FIM splits and groupings
    heldout_fraction: float = 0.1  #: share of files held out (by file, stable per path)
    min_heldout_files: int = 1  #: at least this many held-out files when there are >= 2 files
    max_chars: int = 1200  #: files are cut into fragments of about this many characters
    extensions: str = ""  #: comma-separated suffixes to keep ("" = known source/text types, "*" = all)
    max_bytes: int = MAX_BYTES
    dedup_threshold: float = THRESHOLD
    num_perm: int = NUM_PERM
    redact: bool = True
    fim_rate: float = 0.5
    spm_rate: float = 0.5
    metadata_rate: float = 0.5
    related_rate: float = 0.0  #: share of fragments sampled after the fragments defining what they use (``data.related``)
    #: "repository" (fragments in StarCoder2's repository format) or "server" (``data.server_samples``: the
    #: server's prompt at a line using another file's name, its context from the training files only,
    #: then that line; rows get a loss mask on the line, ``train_mask.npy``/``heldout_mask.npy``)
    samples: str = "repository"
    server_budget: int = 512  #: "server" samples: tokens of text in the prompt (the server's ``contextBudget``)
    server_context_rate: float = 0.8  #: "server" samples: share of prompts with the context blocks (else none)
    server_per_file: int = 0  #: "server" samples: at most this many lines per file and epoch (0 = all)
    #: "server" samples: draws per epoch of a training line whose name is in its prompt's context and not in
    #: its file part (only the context can supply it: ``server_samples.View.copy_only``); 1 = as any line
    server_copy_weight: float = 1.0
    seed: int = 1234
    #: an earlier ``prepare``'s output: write its training rows followed by these repositories' (none of
    #: whose files is held out, nor a copy of its held-out files), with its held-out part unchanged
    #: (``finetune.extend``: more training repositories, the same evaluation)
    extend: str = ""
    progress: bool = True
    attribution: bool = True  #: write the attribution index of the kept files into OUT/attribution

    def __post_init__(self) -> None:
        if not 0 <= self.heldout_fraction < 1:
            raise PrepareError("heldout_fraction must be within [0, 1)")
        if self.seq_len < 8 or self.epochs < 1:
            raise PrepareError("seq_len must be >= 8 and epochs >= 1")
        if self.samples not in ("repository", "server"):
            raise PrepareError(f"samples must be 'repository' or 'server', not {self.samples!r}")
        if not 0 <= self.server_context_rate <= 1 or self.server_budget < 64:
            raise PrepareError("server_context_rate must be within [0, 1] and server_budget >= 64")
        if self.server_copy_weight < 0:
            raise PrepareError("server_copy_weight must be >= 0")


def _extension_ok(path: str, extensions: str) -> bool:
    if extensions == "*":
        return True
    if not extensions:
        return is_source_path(path)
    wanted = {e.strip().lower() if e.strip().startswith(".") else "." + e.strip().lower()
              for e in extensions.split(",") if e.strip()}
    return os.path.splitext(path)[1].lower() in wanted


def _heldout_paths(paths: Sequence[str], fraction: float, minimum: int, salt: str) -> set[str]:
    """The files whose salted hash ranks lowest: stable per path, at least ``minimum`` of them."""
    if len(paths) < 2 or (fraction == 0 and minimum == 0):
        return set()
    ranked = sorted(paths, key=lambda p: hashlib.sha256(f"{salt}:{p}".encode()).digest())
    n = min(len(paths) - 1, max(minimum, round(fraction * len(paths))))
    return set(ranked[:n])


def _bar(it, cfg: RepoDataConfig, **kw):
    if not cfg.progress:
        return it
    from tqdm import tqdm

    return tqdm(it, **kw)


@dataclass
class Corpus:
    """What the stages of ``prepare`` hand on: every file seen, and the texts that are kept."""

    roots: list[Path]
    names: list[str]  #: one repository name per root (the prompt's ``<repo_name>``)
    records: list[dict] = field(default_factory=list)  #: one per file seen, in manifest order
    texts: dict[str, str] = field(default_factory=dict)  #: key -> text of the kept files
    repo_of: dict[str, str] = field(default_factory=dict)  #: key -> repository name
    origin: dict[str, tuple[Path, str]] = field(default_factory=dict)  #: key -> (root, path inside it)
    bytes_read: int = 0
    redactions: Counter = field(default_factory=Counter)
    held: set[str] = field(default_factory=set)  #: keys of the held-out files

    def files(self, name: str, held: bool) -> list[tuple[str, str]]:
        """(key, text) of repository ``name``'s held-out or training files, in key order."""
        return [(k, t) for k, t in sorted(self.texts.items()) if self.repo_of[k] == name and (k in self.held) == held]


def prepare(repos: Sequence[str | Path], cfg: RepoDataConfig) -> dict:
    """The stages in order: collect (scan rules, extensions, filters) -> dedup -> redact -> held-out
    split -> samples, tokens, packed rows -> held-out copies, attribution index, manifest."""
    from . import tokenizer as tokmod

    t0 = time.time()
    corpus = _open_repos(repos)
    base = None
    if cfg.extend:
        from .extend import Base

        base = Base.load(cfg.extend, corpus.roots, corpus.names, seq_len=cfg.seq_len, samples=cfg.samples)
    tok = tokmod.load(cfg.tokenizer)
    tok.model_max_length = 1 << 30  # whole files are tokenized for counts; rows are cut later
    if base:
        base.check_vocab(len(tok))
    collect(corpus, cfg, prefix=base is not None)
    drop_duplicates(corpus, cfg, keep_first=base.heldout_texts() if base else ())
    redact_secrets(corpus, cfg)
    split_heldout(corpus, cfg, tok, hold=base is None)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out / "tokenizer")
    train_mask = None
    if cfg.samples == "server":
        (train_rows, train_mask), (held_rows, held_mask), held_padded = pack_server_rows(corpus, cfg, tok)
        np.save(out / "train_mask.npy", train_mask)
        np.save(out / "heldout_mask.npy", held_mask)
    else:
        train_rows, held_rows, held_padded = pack_rows(corpus, cfg, tok)
        for stale in ("train_mask.npy", "heldout_mask.npy"):
            (out / stale).unlink(missing_ok=True)
    np.save(out / "train.npy", train_rows)
    np.save(out / "heldout.npy", held_rows)
    rows = {"vocab_size": len(tok), "seq_len": cfg.seq_len, "epochs": cfg.epochs, "train_tokens": int(train_rows.size),
            "heldout_tokens": int(held_rows.size), "heldout_padding_tokens": held_padded}
    if base:  # its rows first, its held-out part as it is; its files listed ahead of these
        rows.update(base.write(out, train_rows, train_mask))
        corpus.records[:0] = base.manifest["files"]
    else:
        write_heldout_files(corpus, out)
    attribution = write_attribution_index(out / ATTRIBUTION_DIR, corpus.texts, corpus.origin) if cfg.attribution else None
    manifest = write_manifest(corpus, cfg, out, rows, attribution, time.time() - t0)
    print(f"{len(corpus.records)} files seen, {manifest['kept_files']} kept ({manifest['train_files']} train, "
          f"{manifest['heldout_files']} held out); train {manifest['train_tokens'] // cfg.seq_len} held-out "
          f"{manifest['heldout_tokens'] // cfg.seq_len} rows of {cfg.seq_len}; "
          f"redactions {dict(corpus.redactions) or 'none'}; {manifest['seconds']:.1f} s -> {out}")
    return manifest


def _open_repos(repos: Sequence[str | Path]) -> Corpus:
    if not repos:
        raise PrepareError("no repository given")
    roots = [Path(r) for r in repos]
    for r in roots:
        if not r.is_dir():
            raise PrepareError(f"{r}: not a directory")
    names = [r.resolve().name or "repo" for r in roots]
    if len(set(names)) != len(names):  # two repos with the same directory name
        names = [f"{n}-{i}" for i, n in enumerate(names)]
    return Corpus(roots, names)


def collect(corpus: Corpus, cfg: RepoDataConfig, prefix: bool = False) -> None:
    """Stage 1: every file of every repository through the scan rules of ``sc2lsp.workspace.scan``,
    the extension choice and The Stack v2 filters; a record per file, the texts of the kept ones.
    Keys are ``NAME/path`` when there are several repositories (or ``prefix``), else the path."""
    multi = len(corpus.roots) > 1 or prefix
    for name, root in zip(corpus.names, corpus.roots):
        for e in _bar(scan(root, max_bytes=cfg.max_bytes, report_dirs=True), cfg, desc=f"scan {name}", unit="file"):
            key = f"{name}/{e.path}" if multi else e.path
            reason = e.reason
            if reason is None and not _extension_ok(e.path, cfg.extensions):
                reason = "not a source file type"
            if reason is None:
                corpus.bytes_read += e.size
                reason = reject_reason(e.text or "", max_bytes=cfg.max_bytes)
            corpus.records.append({"path": key, "repo": name, "kept": reason is None, "reason": reason})
            if reason is None:
                corpus.texts[key] = e.text or ""
                corpus.repo_of[key] = name
                corpus.origin[key] = (root, e.path)


def drop_duplicates(corpus: Corpus, cfg: RepoDataConfig, keep_first: Sequence[tuple[str, str]] = ()) -> None:
    """Stage 2: exact and near (MinHash) duplicates leave the kept files, with the reason; a file
    duplicating one of ``keep_first`` (texts that are not part of the corpus) leaves too."""
    dropped = dedup([*keep_first, *sorted(corpus.texts.items())], threshold=cfg.dedup_threshold,
                    num_perm=cfg.num_perm, progress=cfg.progress)
    for rec in corpus.records:
        if rec["kept"] and rec["path"] in dropped:
            rec.update(kept=False, reason=dropped[rec["path"]])
            del corpus.texts[rec["path"]]


def redact_secrets(corpus: Corpus, cfg: RepoDataConfig) -> None:
    """Stage 3: secrets and PII replaced (counted per file); nothing left to train on is an error."""
    by_path = {r["path"]: r for r in corpus.records}
    if cfg.redact:
        for key in list(corpus.texts):
            corpus.texts[key], counts = redact(corpus.texts[key])
            corpus.redactions.update(counts)
            if counts:
                by_path[key]["redactions"] = counts
    if not corpus.texts:
        reasons = Counter(r["reason"] for r in corpus.records)
        detail = ", ".join(f"{n} {why}" for why, n in reasons.most_common(4)) or "no files at all"
        raise PrepareError(f"nothing to train on in {', '.join(map(str, corpus.roots))}: {detail}")


def split_heldout(corpus: Corpus, cfg: RepoDataConfig, tok, hold: bool = True) -> None:
    """Stage 4: held-out files chosen by a salted hash of their path (none unless ``hold``); token
    counts per kept file."""
    corpus.held = _heldout_paths(sorted(corpus.texts), cfg.heldout_fraction, cfg.min_heldout_files,
                                 salt=str(cfg.seed)) if hold else set()
    ids = tok(list(corpus.texts.values()), add_special_tokens=False)["input_ids"]
    token_counts = dict(zip(corpus.texts, map(len, ids)))
    for rec in corpus.records:
        if rec["kept"]:
            rec["split"] = "heldout" if rec["path"] in corpus.held else "train"
            rec["tokens"] = token_counts[rec["path"]]


def _samples(corpus: Corpus, cfg: RepoDataConfig, tok, name: str, held: bool, seed: int) -> np.ndarray:
    """The token stream of repository ``name``'s training or held-out files as FIM/repository samples."""
    docs = make_documents(corpus.files(name, held), repo=name, seed=seed, max_chars=cfg.max_chars,
                          fim_rate=cfg.fim_rate, spm_rate=cfg.spm_rate, metadata_rate=cfg.metadata_rate,
                          related_rate=cfg.related_rate)
    return tokenize_documents(tok, docs)


def pack_rows(corpus: Corpus, cfg: RepoDataConfig, tok) -> tuple[np.ndarray, np.ndarray, int]:
    """Stage 5: (training rows, held-out rows, held-out padding tokens). Each epoch draws fresh FIM
    splits and groupings of the training files; the held-out files are sampled once."""
    streams = [_samples(corpus, cfg, tok, name, False, cfg.seed + epoch)
               for epoch in _bar(range(cfg.epochs), cfg, desc="samples+tokens", unit="epoch")
               for name in corpus.names if corpus.files(name, held=False)]
    if not streams:
        raise PrepareError("every kept file is held out; add files or lower heldout_fraction")
    stream = np.concatenate(streams)
    train_rows = pack(stream, cfg.seq_len)
    if len(train_rows) == 0:
        raise PrepareError(f"only {len(stream)} training tokens: fewer than one row of seq_len={cfg.seq_len}")
    held_stream = np.concatenate([np.zeros(0, dtype=stream.dtype)] + [
        _samples(corpus, cfg, tok, name, True, cfg.seed - 1) for name in corpus.names])
    held_padded = 0
    if 0 < len(held_stream) < cfg.seq_len:  # a tiny repository: one padded held-out row rather than none
        held_padded = cfg.seq_len - len(held_stream)
        pad_id = tok.convert_tokens_to_ids(ENDOFTEXT)
        held_stream = np.concatenate([held_stream, np.full(held_padded, pad_id, dtype=held_stream.dtype)])
    return train_rows, pack(held_stream, cfg.seq_len), held_padded


def pack_server_rows(corpus: Corpus, cfg: RepoDataConfig, tok):
    """Stage 5 for ``samples="server"``: ``((train rows, mask), (held-out rows, mask), 0)``. The training
    prompts' context comes from an index of the training files only; the held-out prompts (a loss to
    watch, not the bench's cases) from the training files plus the held-out files."""
    from sc2lsp.core.budget import memo_counter

    from .data.server_samples import pack_masked, server_samples

    count = memo_counter(lambda t: len(tok(t, add_special_tokens=False)["input_ids"]), maxsize=1 << 16)
    kw = dict(count=count, total=cfg.server_budget, per_file=cfg.server_per_file,
              context_rate=cfg.server_context_rate)
    train, held = [], []
    for name in corpus.names:
        files = corpus.files(name, held=False)
        for epoch in _bar(range(cfg.epochs), cfg, desc=f"server samples {name}", unit="epoch"):
            train += server_samples(files, repo=name, seed=cfg.seed + epoch, copy_weight=cfg.server_copy_weight, **kw)
        held_files = corpus.files(name, held=True)
        if held_files:
            held += server_samples(sorted(files + held_files), repo=name, seed=cfg.seed - 1,
                                   cases_in={p for p, _ in held_files}, **kw)
    train_rows, train_mask, dropped = pack_masked(tok, train, cfg.seq_len)
    held_rows, held_mask, held_dropped = pack_masked(tok, held, cfg.seq_len)
    if len(train_rows) == 0:
        raise PrepareError(f"no server samples: no training file uses another file's definitions through its "
                           f"imports ({len(train)} samples, {dropped} longer than seq_len={cfg.seq_len})")
    print(f"server samples: {len(train)} train ({dropped} longer than a row, dropped), {len(held)} held out "
          f"({held_dropped} dropped); {int(train_mask.sum())} train tokens in the loss")
    return (train_rows, train_mask), (held_rows, held_mask), 0


def write_heldout_files(corpus: Corpus, out: Path) -> None:
    """Stage 6: copies of the held-out texts (``eval`` needs no repository) and their list."""
    held_dir = out / "heldout"
    for key in sorted(corpus.held):
        dest = held_dir / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(corpus.texts[key], encoding="utf-8")
    (out / "heldout_files.json").write_text(json.dumps(
        {"root": "heldout", "source_roots": [str(r.resolve()) for r in corpus.roots], "files": sorted(corpus.held)},
        indent=1))


def write_manifest(corpus: Corpus, cfg: RepoDataConfig, out: Path, rows: dict, attribution: dict | None,
                   seconds: float) -> dict:
    """Stage 7: ``manifest.json`` (every file kept or dropped and why) and ``DATASHEET.md``."""
    kept = [r for r in corpus.records if r["kept"]]
    before = rows.get("extends", {})
    manifest = {
        "kind": "repository",
        "sources": before.get("sources", []) + [str(r.resolve()) for r in corpus.roots],
        "repos": before.get("repos", []) + corpus.names,
        "config": asdict(cfg),
        **rows,
        "kept_files": len(kept),
        "train_files": sum(r["split"] == "train" for r in kept),
        "heldout_files": sum(r["split"] == "heldout" for r in kept),
        "kept_file_tokens": sum(r["tokens"] for r in kept),
        "dropped": dict(Counter(_reason_kind(r["reason"]) for r in corpus.records if not r["kept"]).most_common()),
        "redactions": dict(corpus.redactions),
        "bytes_read": corpus.bytes_read,
        "attribution_index": attribution,
        "seconds": round(seconds, 1),
        "files": corpus.records,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (out / "DATASHEET.md").write_text(datasheet(manifest))
    return manifest


ATTRIBUTION_DIR = "attribution"


def write_attribution_index(out: Path, texts: dict[str, str], origin: dict[str, tuple[Path, str]]) -> dict:
    """The attribution index of the training corpus: one document per kept file (as trained on)."""
    from sc2lsp.attribution.build import Document, build_index, git_info
    from sc2lsp.attribution.licenses import LicenseResolver

    resolvers: dict[Path, tuple[LicenseResolver, str, str | None]] = {}
    docs = []
    for key in sorted(texts):
        root, rel = origin[key]
        if root not in resolvers:
            repo, rev = git_info(root.resolve())
            resolvers[root] = (LicenseResolver(root.resolve()), repo or root.resolve().name, rev)
        resolver, repo, rev = resolvers[root]
        lic, lic_src = resolver.for_file(rel, texts[key])
        docs.append(Document(path=rel, text=texts[key], repository=repo, revision=rev, license=lic,
                             license_source=lic_src, root=str(root.resolve())))
    stats = build_index(docs, out, store_text=True)
    return {"path": out.name, "documents": stats.documents, "skipped": stats.skipped,
            "windows": stats.windows, "bytes": stats.index_bytes}


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary ("near duplicate of a.py (...)" -> "near duplicate")."""
    for prefix in ("near duplicate", "exact duplicate", "unreadable", "larger than"):
        if reason.startswith(prefix):
            return prefix
    return reason


def datasheet(m: dict) -> str:
    cfg = m["config"]
    lines = [
        "# Datasheet", "",
        f"Prepared by `python -m finetune prepare` in {m['seconds']} s from: " + ", ".join(f"`{s}`" for s in m["sources"]),
        "", "## Composition", "",
        f"- files seen: {len(m['files'])}; kept: {m['kept_files']} ({m['train_files']} train, "
        f"{m['heldout_files']} held out, split by file)",
        f"- tokens: {m['train_tokens']} train ({m['epochs']} epochs of samples, rows of {m['seq_len']}), "
        f"{m['heldout_tokens']} held out; {m['kept_file_tokens']} in the kept files once",
        f"- vocabulary: {m['vocab_size']} (tokenizer `{cfg['tokenizer']}`)",
        "", "## Dropped files", "", "| reason | files |", "|---|---|",
        *[f"| {why} | {n} |" for why, n in m["dropped"].items()],
        "", "## Processing", "",
        "- scan rules shared with the server (`sc2lsp/workspace/scan.py`): .gitignore, .sc2lspignore, secret-bearing "
        "files, vendored/binary/generated/minified files, files over the size limit, no symlinks out of the root",
        "- The Stack v2 filters: max line length 1000, mean line length 100, alphanumeric fraction >= 0.25, "
        "autogenerated markers",
        f"- exact dedup (whitespace-normalised) and near dedup (MinHash, word 5-grams, {cfg['num_perm']} permutations, "
        f"Jaccard {cfg['dedup_threshold']})",
        "- attribution index: " + (f"`{m['attribution_index']['path']}/` ({m['attribution_index']['documents']} "
                                    f"documents, {m['attribution_index']['bytes']} bytes; `sc2lsp attribution check "
                                    f"--index`)" if m.get("attribution_index") else "not written"),
        "- redaction: " + (", ".join(f"{k} {v}" for k, v in m["redactions"].items()) or "nothing found")
        + (" (e-mails -> `<EMAIL>`, keys/tokens -> `<KEY>`, passwords -> `<PASSWORD>`, public IPs -> "
           "documentation-range stand-ins)" if cfg["redact"] else " (disabled)"),
        f"- StarCoder2 repository format (metadata rate {cfg['metadata_rate']}), FIM rate {cfg['fim_rate']}, "
        f"SPM rate {cfg['spm_rate']}, per file fragment of ~{cfg['max_chars']} characters",
        "", "## Use and limits", "",
        "For fine-tuning a model on this code by its owner. Rule-based redaction misses secrets that look like "
        "ordinary strings: review `manifest.json` before sharing the data or a model trained on it. The license of "
        "the source repository applies to the data.", "",
    ]
    return "\n".join(lines)
