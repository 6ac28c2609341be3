"""``python -m finetune tune REPO`` (what ``sc2lsp tune`` runs): fine-tune a base model on a repository
in one step, and register the result only when it is better.

Stages, each in the work directory (default ``~/.cache/sc2lsp/runs/tune/NAME``):

1. ``prepare``: the repository as StarCoder2 data with the base's own tokenizer (``data/``);
2. ``train``: LoRA, preset by base size and device (``run/``; resumes from ``run/ckpt.pt``);
3. ``convert``: the PEFT adapter -> GGUF adapter (``NAME-lora.gguf``);
4. ``eval``: base vs tuned on the held-out files through the serving path (the base's GGUF through
   llama.cpp, alone and with the adapter): next-line exact match and edit similarity; held-out loss
   (nats/token) of the base and of the tuned model from ``train``;
5. ``gate``: the tuned model must beat the base on the gate metric (held-out loss by default);
   then ``NAME-lora`` is registered in the user's models.toml as an adapter on the base's entry
   (``--force`` registers anyway); otherwise nothing is registered and the report says why;
6. ``report``: ``tune-report.md`` (table, time per stage, decision) and ``loss.png``.

Every stage writes ``stages/STAGE.json`` (its key: the inputs it ran on, its result, its time) last,
atomically; a stage whose stamp has the same key and whose outputs are present is skipped, so the
same command after a kill goes on where it stopped (training itself resumes from its checkpoint).
``--events FILE`` appends one JSON object per line for a parent process (the language server):
stage start/done/skip, training step/total/loss/ETA, the final result.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .paths import CONFIGS, runs_dir

STAGES = ("prepare", "train", "convert", "eval", "gate", "report")
NOT_REGISTERED = 3  #: exit status when the gate refused the tuned model (nothing registered)
GATES = {"heldout_loss": -1, "exact_match": 1, "edit_similarity": 1}  #: metric -> sign of "better"


class TuneError(ValueError):
    """The tune cannot go on (the message says why and what to do)."""


@dataclass
class TuneOptions:
    repo: str
    base: str = "sc2-tiny"  #: a models.toml entry with a GGUF and a checkpoint (hf_checkpoint / hf_repo)
    name: str = ""  #: the adapter is registered as NAME-lora ("" = the repository's directory name)
    force: bool = False  #: register even when the tuned model is not better
    work: str = ""  #: work directory ("" = runs_dir()/tune/NAME)
    prepare: list[str] = field(default_factory=list)  #: key=value for RepoDataConfig
    train: list[str] = field(default_factory=list)  #: key=value for LoraTrainConfig (over the preset)
    preset: str = ""  #: a LoRA preset ("" = by base size and device)
    gate: str = "heldout_loss"
    per_file: int = 20  #: held-out next-line cases per file
    events: str = ""  #: append JSON lines here (stage, step/total, loss, ETA, result)
    progress: bool = True


class Events:
    """Human lines on stdout and, with ``--events``, JSON lines for a parent process."""

    def __init__(self, path: str):
        self.path = Path(path) if path else None
        self.lock = threading.Lock()

    def __call__(self, **event) -> None:
        event.setdefault("time", round(time.time(), 3))
        if self.path is not None:
            with self.lock, open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stamps:
    """``WORK/stages/STAGE.json``: what a finished stage ran on (``key``), its result and its time."""

    def __init__(self, work: Path):
        self.dir = work / "stages"

    def get(self, stage: str, key: str) -> dict | None:
        p = self.dir / f"{stage}.json"
        try:
            s = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        return s if s.get("key") == key else None

    def put(self, stage: str, key: str, result: dict, seconds: float) -> dict:
        self.dir.mkdir(parents=True, exist_ok=True)
        s = {"stage": stage, "key": key, "result": result, "seconds": round(seconds, 1)}
        tmp = self.dir / f".{stage}.json.tmp"
        tmp.write_text(json.dumps(s, indent=1))
        os.replace(tmp, self.dir / f"{stage}.json")
        return s

    def drop(self, *stages: str) -> None:
        for st in stages:
            (self.dir / f"{st}.json").unlink(missing_ok=True)


# --------------------------------------------------------------------------- base model and preset


@dataclass(frozen=True)
class Base:
    name: str  #: the models.toml entry (its GGUF serves the adapter)
    checkpoint: Path  #: its safetensors checkpoint
    gguf: Path
    parameters: int


def resolve_base(name: str) -> Base:
    from sc2lsp.errors import UserError
    from sc2lsp.models.registry import hf_checkpoint, load_registry, resolve

    try:
        reg = load_registry()
        entry = reg.get(name)
        if entry.base is not None:
            raise UserError(f"{name} is an adapter entry; tune on its base {entry.base}")
        ckpt = hf_checkpoint(name, reg)
        gguf = resolve(name, None, reg)
    except UserError as e:
        raise TuneError(str(e)) from None
    cfg = json.loads((ckpt / "config.json").read_text())
    h, n, ff, v = (cfg.get(k, 0) for k in ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size"))
    params = n * (4 * h * h + 2 * h * ff) + v * h  # approximate: attention + MLP + embeddings
    return Base(name, ckpt, gguf, int(params))


def pick_preset(base: Base, device: str) -> Path:
    """The LoRA preset for a base size and device: sc2-tiny-sized models anywhere, larger ones on a GPU,
    larger ones on a CPU (few short steps: hours, not days)."""
    if base.parameters < 200e6:
        return CONFIGS / "lora-sc2-tiny.toml"
    return CONFIGS / ("lora-starcoder2-3b.toml" if device == "cuda" else "lora-starcoder2-cpu.toml")


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- stages


class Tune:
    def __init__(self, opts: TuneOptions):
        self.opts = opts
        repo = Path(opts.repo).expanduser()
        if not repo.is_dir():
            raise TuneError(f"{opts.repo}: not a directory")
        self.repo = repo.resolve()
        self.name = opts.name or re.sub(r"[^a-z0-9._-]+", "-", self.repo.name.lower()).strip("-.") or "repo"
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", self.name):
            raise TuneError(f"--name {self.name!r}: use lower case letters, digits, '.', '_', '-'")
        if opts.gate not in GATES:
            raise TuneError(f"--gate must be one of {', '.join(GATES)}")
        self.work = Path(opts.work).expanduser().resolve() if opts.work else runs_dir() / "tune" / self.name
        self.work.mkdir(parents=True, exist_ok=True)
        self.stamps = Stamps(self.work)
        self.emit = Events(opts.events)
        self.times: dict[str, dict] = {}

    def say(self, msg: str) -> None:
        print(msg, flush=True)

    def stage(self, stage: str, key: str, outputs_ok, work) -> dict:
        """Run ``work()`` unless a stamp with ``key`` exists and ``outputs_ok()``; returns the result."""
        done = self.stamps.get(stage, key)
        if done is not None and outputs_ok(done["result"]):
            self.say(f"[{stage}] done earlier ({done['seconds']} s): skipped")
            self.emit(stage=stage, status="skip")
            self.times[stage] = {"seconds": done["seconds"], "skipped": True}
            return done["result"]
        self.say(f"[{stage}] ...")
        self.emit(stage=stage, status="start")
        t0 = time.time()
        result = work()
        s = self.stamps.put(stage, key, result, time.time() - t0)
        self.times[stage] = {"seconds": s["seconds"], "skipped": False}
        self.emit(stage=stage, status="done", seconds=s["seconds"])
        self.say(f"[{stage}] {s['seconds']} s")
        return result

    def run(self) -> dict:
        lock = self._lock()
        try:
            return self._run()
        finally:
            lock.close()

    def _lock(self):
        """One run per work directory (the CLI and the editor could start the same one)."""
        f = open(self.work / ".lock", "w")
        try:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no advisory locks (Windows)
            pass
        except BlockingIOError:
            f.close()
            raise TuneError(f"another `sc2lsp tune` is running in {self.work}; wait for it or stop it") from None
        return f

    def _run(self) -> dict:
        t_all = time.time()
        base = resolve_base(self.opts.base)
        self.say(f"tune {self.repo} on {base.name} ({base.parameters / 1e6:.1f}M parameters, checkpoint "
                 f"{base.checkpoint}) -> {self.name}-lora; work directory {self.work}")
        data = self.work / "data"
        k_prep = _key(str(self.repo), str(base.checkpoint), sorted(self.opts.prepare), _tree_key(self.repo))
        self.stage("prepare", k_prep, lambda r: _data_ok(data), lambda: self._prepare(base, data))

        device = _device()
        preset = Path(self.opts.preset) if self.opts.preset else pick_preset(base, device)
        from .config import load
        from .train import LoraTrainConfig

        run = self.work / "run"
        cfg = load(LoraTrainConfig, preset, [*self.opts.train, f"base={base.checkpoint}", f"data={data}",
                                             f"out={run}", f"progress={str(self.opts.progress).lower()}"])
        cfg_dict = asdict(cfg)
        k_train = _key(k_prep, {k: v for k, v in cfg_dict.items() if k not in ("progress", "threads")})
        if self.stamps.get("train", k_train) is None and (run / "config.json").is_file():
            old = json.loads((run / "config.json").read_text())
            if {k: v for k, v in old.items() if k not in ("progress", "threads", "base")} != \
                    {k: v for k, v in cfg_dict.items() if k not in ("progress", "threads", "base")}:
                self.say("[train] settings changed since the last run: starting the run over")
                shutil.rmtree(run)
        summary = self.stage("train", k_train, lambda r: (run / "adapter" / "adapter_config.json").is_file(),
                             lambda: self._train(cfg, preset, device))

        lora = self.work / f"{self.name}-lora.gguf"
        self.stage("convert", _key(k_train), lambda r: lora.is_file(),
                   lambda: self._convert(run, base, lora))

        ev = self.stage("eval", _key(k_train, self.opts.per_file, str(base.gguf)), lambda r: True,
                        lambda: self._eval(base, lora, data, summary))

        verdict = self.stage("gate", _key(k_train, self.opts.gate, self.opts.force, self.name, str(lora)),
                             lambda r: (not r["registered"]) or _registered(r["model"], lora),
                             lambda: self._gate(base, lora, ev, run))
        result = {"name": self.name, "model": f"{self.name}-lora", "base": base.name, "repo": str(self.repo),
                  "work": str(self.work), "preset": str(preset), "device": device, "eval": ev, "train": summary,
                  **verdict}
        report = self.work / "tune-report.md"
        self.stage("report", _key(result, self.times.get("prepare"), time.time()), lambda r: False,
                   lambda: self._report(result, run, report))
        result.update(report=str(report), loss_png=str(self.work / "loss.png"), stages=self.times,
                      seconds=round(time.time() - t_all, 1))
        (self.work / "result.json").write_text(json.dumps(result, indent=1))
        self.emit(stage="done", result=result)
        return result

    # ---------------------------------------------------------------- the stages' work

    def _prepare(self, base: Base, data: Path) -> dict:
        from .config import load
        from .prepare import RepoDataConfig, prepare

        shutil.rmtree(data, ignore_errors=True)
        cfg = load(RepoDataConfig, None, [*self.opts.prepare, f"out={data}", f"tokenizer={base.checkpoint}",
                                          f"progress={str(self.opts.progress).lower()}"])
        m = prepare([self.repo], cfg)
        return {k: m[k] for k in ("kept_files", "train_files", "heldout_files", "train_tokens", "heldout_tokens",
                                  "redactions")}

    def _train(self, cfg, preset: Path, device: str) -> dict:
        from .train import train

        self.say(f"[train] preset {preset.name} on {device}: {cfg.max_steps} steps, lr {cfg.lr}, r {cfg.r}")
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch_metrics, args=(Path(cfg.out), cfg.max_steps, stop),
                                   daemon=True)
        watcher.start()
        try:
            return train(cfg)
        finally:
            stop.set()
            watcher.join(5)

    def _watch_metrics(self, run: Path, total: int, stop: threading.Event) -> None:
        """Training progress for ``--events``: step/total, loss and ETA from ``run/metrics.jsonl``."""
        path, offset, first = run / "metrics.jsonl", 0, None
        while not stop.wait(1.0):
            try:
                with open(path, encoding="utf-8") as f:
                    f.seek(offset)
                    chunk = f.read()
            except OSError:
                continue
            lines = chunk.split("\n")
            offset += len(chunk) - len(lines[-1])
            rows = [json.loads(x) for x in lines[:-1] if x.strip()]
            rows = [r for r in rows if "loss" in r]
            if not rows:
                continue
            last, now = rows[-1], time.time()
            if first is None:
                first = (last["step"], now)
            rate = (last["step"] - first[0]) / (now - first[1]) if now > first[1] else 0
            eta = round((total - last["step"]) / rate) if rate > 0 else None
            self.emit(stage="train", step=last["step"], total=total, loss=last["loss"], eta_s=eta)

    def _convert(self, run: Path, base: Base, lora: Path) -> dict:
        from sc2lsp.models.gguf_lora import convert_lora

        tmp = lora.with_name(lora.name + ".tmp.gguf")
        convert_lora(run / "adapter", str(base.checkpoint), tmp)
        os.replace(tmp, lora)
        return {"adapter_gguf": str(lora), "bytes": lora.stat().st_size}

    def _eval(self, base: Base, lora: Path, data: Path, summary: dict) -> dict:
        """Next-line exact match / edit similarity of the base GGUF alone and with the adapter (llama.cpp,
        as served); held-out losses from training. A diverged run (non-finite loss) is not generated from."""
        from sc2lsp.backends.factory import load_backend
        from sc2lsp.config import Settings

        from .evaluate import evaluate, load_heldout, next_line_cases

        cases = next_line_cases(load_heldout(data / "heldout_files.json"), per_file=self.opts.per_file)
        out = {"cases": len(cases)}
        settings = Settings(model=base.name, token_healing=False)
        for which, adapter in (("base", None), ("tuned", str(lora))):
            if which == "tuned" and not math.isfinite(summary.get("heldout_loss") or 0.0):
                out[which] = {"exact_match": None, "edit_similarity": None, "ms_per_case": None, "samples": []}
                continue
            self.emit(stage="eval", model=which, total=len(cases))
            backend = load_backend(settings, adapter=adapter)
            try:
                r = evaluate(backend, cases)
            finally:
                close = getattr(backend, "close", None)
                if close:
                    close()
            out[which] = {"exact_match": r["exact_match"], "edit_similarity": r["edit_similarity"],
                          "ms_per_case": r["ms_per_case"], "samples": r["samples"][:4]}
        out["base"]["heldout_loss"] = summary.get("base_heldout_loss")
        out["tuned"]["heldout_loss"] = summary.get("heldout_loss")
        return out

    def _gate(self, base: Base, lora: Path, ev: dict, run: Path) -> dict:
        metric, sign = self.opts.gate, GATES[self.opts.gate]
        b, t = ev["base"].get(metric), ev["tuned"].get(metric)
        better = b is not None and t is not None and (t - b) * sign > 0
        how = f"{metric.replace('heldout_', '').replace('_', ' ')} {b} -> {t}"
        model = f"{self.name}-lora"
        if not better and not self.opts.force:
            reason = (f"not registered: the tuned model does not beat {base.name} on the held-out {how} "
                      f"({'lower' if sign < 0 else 'higher'} is better); `--force` registers it anyway")
            self.say(f"[gate] {reason}")
            return {"better": False, "registered": False, "model": model, "decision": reason}
        dest = _adapters_dir() / f"{model}.gguf"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(lora, tmp)
        os.replace(tmp, dest)
        from sc2lsp.models.registry import user_models_toml

        from .export_lora import adapter_entry, upsert_entry

        desc = (f"LoRA adapter of {base.name} tuned on {self.repo.name} (sc2lsp tune; held-out {how})")
        upsert_entry(user_models_toml(), model, adapter_entry(model, base.name, dest, description=desc))
        decision = (f"registered {model} in {user_models_toml()}: " + (f"better on the held-out {how}" if better
                    else f"--force (not better: held-out {how})"))
        self.say(f"[gate] {decision}")
        return {"better": better, "registered": True, "model": model, "adapter": str(dest),
                "decision": decision}

    def _report(self, result: dict, run: Path, report: Path) -> dict:
        if (run / "loss.png").is_file():
            shutil.copyfile(run / "loss.png", self.work / "loss.png")
        else:
            rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
            from .train import plot_losses

            plot_losses(rows, self.work / "loss.png", title=f"LoRA on {result['base']}")
        report.write_text(render_report(result, self.times), encoding="utf-8")
        self.say(report.read_text())
        return {"report": str(report)}


def render_report(r: dict, times: dict) -> str:
    ev, tr = r["eval"], r["train"]
    rows = [("held-out loss (nats/token, lower is better)", "heldout_loss", "{:.3f}"),
            ("next-line exact match", "exact_match", "{:.3f}"),
            ("next-line edit similarity", "edit_similarity", "{:.3f}"),
            ("ms per case (llama.cpp)", "ms_per_case", "{:.1f}")]
    fmt = lambda f, v: "-" if v is None else f.format(v)  # noqa: E731
    lines = [f"# sc2lsp tune: {r['repo']} on {r['base']}", "",
             f"**{r['decision']}**", "",
             f"| held-out ({ev['cases']} next-line cases) | {r['base']} | {r['model']} |", "|---|---|---|",
             *[f"| {label} | {fmt(f, ev['base'].get(k))} | {fmt(f, ev['tuned'].get(k))} |" for label, k, f in rows],
             "", f"Training: {tr.get('step')} steps, {tr.get('tokens_seen')} tokens, "
                 f"{tr.get('trainable_parameters')} trainable parameters, {tr.get('dtype')} on {r['device']} "
                 f"(preset `{Path(r['preset']).name}`).", "",
             "![loss](loss.png)", "", "| stage | seconds |", "|---|---|",
             *[f"| {s} | {t['seconds']}{' (done earlier)' if t['skipped'] else ''} |" for s, t in times.items()],
             "", "Samples (expected / base / tuned are in `result.json`). Served with "
                 f"`sc2lsp serve --model {r['model']}` when registered.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def _adapters_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "sc2lsp" / "adapters"


def _registered(model: str, lora: Path) -> bool:
    from sc2lsp.errors import UserError
    from sc2lsp.models.registry import load_registry

    try:
        e = load_registry().models.get(model)
    except UserError:
        return False
    return e is not None and e.lora is not None and e.lora.is_file()


def _data_ok(data: Path) -> bool:
    try:
        import numpy as np

        json.loads((data / "manifest.json").read_text())
        return all(np.load(data / f, mmap_mode="r").ndim == 2 for f in ("train.npy", "heldout.npy")) \
            and (data / "heldout_files.json").is_file()
    except (OSError, ValueError):
        return False


def _tree_key(root: Path) -> str:
    """A cheap fingerprint of the repository (paths, sizes, mtimes) so edited sources are prepared again."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            try:
                st = os.stat(os.path.join(dirpath, f))
            except OSError:
                continue
            h.update(f"{os.path.relpath(os.path.join(dirpath, f), root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def add_arguments(p) -> None:
    p.add_argument("repo", metavar="REPO", help="the repository directory to fine-tune on")
    p.add_argument("--base", default="sc2-tiny", help="models.toml entry to tune (default sc2-tiny; e.g. starcoder2-3b)")
    p.add_argument("--name", default="", help="register the adapter as NAME-lora (default: the directory's name)")
    p.add_argument("--force", action="store_true", help="register even when the tuned model is not better")
    p.add_argument("--work", default="", help="work directory (default ~/.cache/sc2lsp/runs/tune/NAME)")
    p.add_argument("--preset", default="", help="LoRA preset (default: by base size and device)")
    p.add_argument("--gate", default="heldout_loss", choices=sorted(GATES), help="metric the tuned model must beat")
    p.add_argument("--per-file", type=int, default=20, help="held-out next-line cases per file")
    p.add_argument("--prepare", action="append", default=[], metavar="KEY=VALUE", help="data preparation setting")
    p.add_argument("--train", action="append", default=[], metavar="KEY=VALUE", help="training setting over the preset")
    p.add_argument("--events", default="", help="append JSON progress events to this file")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON at the end")


def main(args) -> int:
    opts = TuneOptions(repo=args.repo, base=args.base, name=args.name, force=args.force, work=args.work,
                       prepare=args.prepare, train=args.train, preset=args.preset, gate=args.gate,
                       per_file=args.per_file, events=args.events, progress=not args.no_progress)
    result = Tune(opts).run()
    if args.json:
        print(json.dumps(result, indent=1))
    return 0 if result["registered"] else NOT_REGISTERED
