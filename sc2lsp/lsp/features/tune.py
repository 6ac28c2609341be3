"""Fine-tuning from the editor: ``workspace/executeCommand sc2lsp.tune [folder?, {base?, name?, force?,
train?, prepare?, perFile?}]`` runs ``sc2lsp tune``'s pipeline on a workspace folder (the first one by
default) as a child process of this interpreter (``python -m finetune tune``; the server itself never
imports finetune or torch) at low priority (nice 10), so completions keep being served.

Progress is server-created ``$/progress`` (cancellable): stage, training step/total, loss and ETA,
read from the child's ``--events`` file. Cancelling the progress (or ``sc2lsp.tuneCancel``) stops the
child; running the command again goes on where it stopped. When the gate registers ``NAME-lora``
the served model switches to it (no restart) and the before/after table is shown; when it refuses,
the message says why. Without the ``[train]`` extras the command is one message naming the install
command. The result: ``{registered, model, decision, report, table, eval}``.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import itertools
import json
import logging
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from ...workspace.paths import uri_to_path
from ..language_server import Sc2Server
from ..params import RequestFailed, command_args, field
from ..progress import WorkDoneProgress
from .config import use_settings

log = logging.getLogger("sc2lsp.lsp")

CMD_TUNE = "sc2lsp.tune"
CMD_TUNE_CANCEL = "sc2lsp.tuneCancel"
NICE = 10
#: progress percentage where each stage starts (training fills 5-85)
STAGE_PCT = {"prepare": 1, "train": 5, "convert": 86, "eval": 88, "gate": 98, "report": 99}
_tokens = itertools.count(1)


@dataclasses.dataclass
class TuneRun:
    proc: asyncio.subprocess.Process
    folder: Path
    cancelled: bool = False


def _folder(ls: Sc2Server, arg: Any) -> Path:
    if arg is None:
        roots = ls.workspaces.roots
        if not roots:
            raise RequestFailed(f"{CMD_TUNE}: no workspace folder is open; open the repository to fine-tune on")
        return roots[0]
    if not isinstance(arg, str) or not arg:
        raise JsonRpcInvalidParams(f"{CMD_TUNE} takes [folder (URI or path)?, options?]")
    path = uri_to_path(arg) if arg.startswith("file:") else Path(arg)
    if path is None or not Path(path).is_dir():
        raise RequestFailed(f"{CMD_TUNE}: {arg} is not a folder")
    return Path(path)


def _base(ls: Sc2Server, options: Any) -> str:
    from ...models.registry import load_registry, looks_like_path

    base = field(options, "base")
    if base:
        return str(base)
    model = ls.settings.model
    if model and not looks_like_path(model):
        try:
            entry = load_registry().models.get(model)
        except Exception:  # a broken user models.toml: the child reports it
            entry = None
        if entry is not None:
            return entry.base or entry.name
    return "sc2-tiny"


def _child_args(folder: Path, base: str, options: Any, events: Path) -> list[str]:
    from ...tuning import child_command

    extra = ["--events", str(events), "--no-progress"]
    for key, flag in (("train", "--train"), ("prepare", "--prepare")):
        for kv in field(options, key) or []:
            extra += [flag, str(kv)]
    for key, flag in (("perFile", "--per-file"), ("work", "--work"), ("gate", "--gate")):
        if field(options, key) is not None:
            extra += [flag, str(field(options, key))]
    return child_command(folder, base=base, name=field(options, "name"), force=bool(field(options, "force")),
                         extra=extra)


def describe(event: dict) -> tuple[str, int | None]:
    """A ``$/progress`` message and percentage for an event of the child."""
    stage = event.get("stage", "")
    if stage == "train" and "step" in event:
        step, total = event["step"], max(1, event.get("total") or 1)
        eta = event.get("eta_s")
        eta_text = f", ETA {eta // 60}m{eta % 60:02d}s" if isinstance(eta, int) else ""
        pct = STAGE_PCT["train"] + int((STAGE_PCT["convert"] - STAGE_PCT["train"]) * step / total)
        return f"train: step {step}/{total}, loss {event.get('loss')}{eta_text}", pct
    if stage == "eval" and "model" in event:
        return f"eval: {event['model']} model on {event.get('total')} held-out cases", STAGE_PCT["eval"] + (
            5 if event["model"] == "tuned" else 0)
    status = event.get("status")
    if stage in STAGE_PCT:
        return f"{stage}: {'done earlier' if status == 'skip' else status or ''}".strip(), STAGE_PCT[stage]
    return stage, None


def table(result: dict) -> str:
    ev = result.get("eval") or {}
    b, t = ev.get("base") or {}, ev.get("tuned") or {}
    rows = [("held-out loss", "heldout_loss"), ("next-line exact match", "exact_match"),
            ("edit similarity", "edit_similarity")]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"{'':24}{result.get('base', 'base'):>14}{result.get('model', 'tuned'):>20}"]
    lines += [f"{label:24}{fmt(b.get(k)):>14}{fmt(t.get(k)):>20}" for label, k in rows]
    return "\n".join(lines)


async def _follow(ls: Sc2Server, run: TuneRun, events: Path, progress: WorkDoneProgress) -> dict | None:
    """Report the child's events until it exits; cancel it when the progress is cancelled."""
    offset, result = 0, None
    cancel = ls.work_done_progress.tokens.get(progress.token)
    while True:
        try:
            await asyncio.wait_for(run.proc.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
        if cancel is not None and cancel.cancelled() and not run.cancelled:
            stop(run)
        try:
            with open(events, encoding="utf-8") as f:
                f.seek(offset)
                chunk = f.read()
        except OSError:
            chunk = ""
        lines = chunk.split("\n")
        offset += len(chunk) - len(lines[-1])
        for line in lines[:-1]:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("stage") == "done":
                result = event.get("result")
            else:
                progress.report(*describe(event))
        if run.proc.returncode is not None:
            return result


def stop(run: TuneRun) -> None:
    """Stop the child (its process group: torch's threads and all); the next run resumes."""
    run.cancelled = True
    try:
        os.killpg(run.proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


async def tune(ls: Sc2Server, *args: Any) -> dict:
    from ...tuning import child_env, install_hint, missing_extras

    argv = command_args(args)
    options = argv[1] if len(argv) > 1 else (argv[0] if argv and isinstance(argv[0], dict) else None)
    folder = _folder(ls, argv[0] if argv and not isinstance(argv[0], dict) else None)
    missing = await asyncio.to_thread(missing_extras)
    if missing:
        message = (f"sc2lsp: fine-tuning needs the training extras (missing: {', '.join(missing)}); "
                   f"install them with `{install_hint()}`")
        ls.show_user("error", message)
        raise RequestFailed(message)
    if getattr(ls, "tune_run", None) is not None:
        raise RequestFailed(f"a fine-tuning run is already going on {ls.tune_run.folder}")
    base = _base(ls, options)
    tmp = Path(tempfile.mkdtemp(prefix="sc2lsp-tune-"))
    events, logfile = tmp / "events.jsonl", tmp / "tune.log"
    cmd = _child_args(folder, base, options, events)
    log.info("tune: %s", " ".join(cmd))
    with open(logfile, "wb") as out:
        proc = await asyncio.create_subprocess_exec(*cmd, env=child_env(), stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=out, stderr=asyncio.subprocess.STDOUT,
                                                    start_new_session=True)
    try:
        os.setpriority(os.PRIO_PROCESS, proc.pid, NICE)  # before it starts torch's threads (they inherit it)
    except (OSError, AttributeError):
        pass
    run = ls.tune_run = TuneRun(proc, folder)
    atexit.register(_stop_if_running, run)  # a server that exits takes its run with it (it resumes next time)
    progress = WorkDoneProgress(ls, f"sc2lsp-tune-{next(_tokens)}")
    try:
        await progress.begin(f"sc2lsp: fine-tuning {base} on {folder.name}", cancellable=True)
        result = await _follow(ls, run, events, progress)
    except asyncio.CancelledError:
        stop(run)
        raise
    finally:
        ls.tune_run = None
    if run.cancelled:
        progress.end("cancelled; run it again to go on where it stopped")
        raise RequestFailed("fine-tuning was cancelled; running it again goes on where it stopped")
    if result is None:
        tail = logfile.read_text(errors="replace").strip().splitlines()[-3:] if logfile.is_file() else []
        why = next((x for x in reversed(tail) if x.startswith("error:")), " / ".join(tail) or "no output")
        progress.end(f"failed: {why}")
        ls.show_user("error", f"sc2lsp: fine-tuning failed: {why} (log: {logfile})")
        raise RequestFailed(f"fine-tuning failed: {why} (log: {logfile})")
    out = {k: result.get(k) for k in ("registered", "better", "model", "base", "decision", "report", "eval")}
    out["table"] = table(result)
    if result.get("registered"):
        out["switched"] = await _switch(ls, result["model"], progress)
    progress.end(result.get("decision", "done"))
    ls.show_user("info" if result.get("registered") else "warning",
                 f"sc2lsp: {result.get('decision')}\n{out['table']}\nreport: {result.get('report')}")
    return out


async def _switch(ls: Sc2Server, model: str, progress: WorkDoneProgress) -> bool:
    """Serve ``model`` from now on (the engine loads it on its worker; no restart)."""
    progress.report(f"loading {model}", 100)
    use_settings(ls, dataclasses.replace(ls.settings, model=model))
    while ls.engine.model_state == "loading":
        await asyncio.sleep(0.05)
    return ls.engine.model_state == "ready"


def _stop_if_running(run: TuneRun) -> None:
    if run.proc.returncode is None:
        stop(run)


def tune_cancel(ls: Sc2Server, *args: Any) -> dict:
    run = getattr(ls, "tune_run", None)
    if run is None:
        return {"cancelled": False}
    stop(run)
    return {"cancelled": True}


def register(server: Sc2Server) -> None:
    server.tune_run = None
    server.command(CMD_TUNE)(tune)
    server.command(CMD_TUNE_CANCEL)(tune_cancel)
