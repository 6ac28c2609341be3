"""Models: the ``sc2lsp.pullModel [name]`` command downloads a model of models.toml
(``models.pull.pull`` on a thread) with server-initiated ``$/progress`` (begin, percentage
reports, end), then loads it as the current model."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from ...errors import UserError
from ..language_server import Sc2Server
from ..params import RequestFailed, command_args
from ..progress import WorkDoneProgress
from .config import use_settings


log = logging.getLogger("sc2lsp.lsp")

CMD_PULL = "sc2lsp.pullModel"
_tokens = itertools.count(1)


async def _model_name(ls: Sc2Server, args: list) -> str:
    """The model to pull: the argument, else the configured model, else the registry's default."""
    from ...models.registry import load_registry, looks_like_path

    name = args[0] if args else None
    if name is None:
        name = ls.settings.model if not looks_like_path(ls.settings.model) else None
        if name is None:
            try:
                name = (await asyncio.to_thread(load_registry)).default
            except UserError as e:
                raise RequestFailed(str(e)) from None
    if not isinstance(name, str) or not name.strip() or looks_like_path(name):
        raise JsonRpcInvalidParams(f"{CMD_PULL} takes [modelName] (a name from models.toml)")
    return name


async def pull_model(ls: Sc2Server, *args: Any) -> dict:
    """``sc2lsp.pullModel [name]``: download with ``$/progress``, then load it as the model."""
    from ...models.pull import pull

    name = await _model_name(ls, command_args(args))
    if ls.pulling:
        raise RequestFailed("a model download is already running")
    ls.pulling = True
    progress = WorkDoneProgress(ls, f"sc2lsp-pull-{next(_tokens)}")
    try:
        await progress.begin(f"sc2lsp: pulling {name}")
        try:
            path = await asyncio.to_thread(pull, name, None, None, progress.threadsafe_report)
        except Exception as e:  # UserError: says what to do; anything else: one error all the same
            why = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, UserError):
                log.exception("pull of %s failed", name)
            progress.end(f"failed: {why}")
            raise RequestFailed(f"cannot pull {name}: {why}" if not isinstance(e, UserError) else why) from None
        progress.report(f"loading {name}", 100)
        use_settings(ls, dataclasses.replace(ls.settings, model=name))
        while ls.engine.model_state == "loading":
            await asyncio.sleep(0.05)
        if ls.engine.model_state != "ready":
            progress.end(f"{name} did not load")
            raise RequestFailed(f"{name} was downloaded to {path} but did not load: {ls.engine.model_error}")
        progress.end(f"{name} loaded")
        return {"path": str(path), "model": name}
    finally:
        ls.pulling = False


def register(server: Sc2Server) -> None:
    server.command(CMD_PULL)(pull_model)
