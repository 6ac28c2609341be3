"""Attribution: the ``sc2lsp/attribution`` request and the ``sc2lsp.suggestionAccepted`` command.

``sc2lsp/attribution {text?, uri?, range?}`` checks a text, a range of a document (open, else
read from disk) or, with neither, the last accepted suggestion against the attribution indexes
(``attribution.provider.AttributionProvider`` on a thread, the workspace folders as ``exclude``)
and adds document ranges to the spans. No index, a broken one or a text over 1 M characters is a
``RequestFailed`` naming the fix; bad params are ``InvalidParams``. Every inline item carries
``sc2lsp.suggestionAccepted [uri, range_of_inserted_text, text]``, which records the last
accepted suggestion.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from ...errors import UserError
from ..language_server import Sc2Server
from ..params import RequestFailed, advance, command_args, field, lsp_range, position, range_
from . import stats


log = logging.getLogger("sc2lsp.lsp")

ATTRIBUTION = "sc2lsp/attribution"
CMD_ACCEPTED = "sc2lsp.suggestionAccepted"


def accept(ls: Sc2Server, args: list) -> None:
    """``sc2lsp.suggestionAccepted [uri, range, text]``: remember the accepted suggestion."""
    if not isinstance(args, (list, tuple)) or len(args) != 3:
        raise JsonRpcInvalidParams(f"{CMD_ACCEPTED} takes [uri, range, insertedText]")
    uri, rng, text = args
    if not isinstance(uri, str) or not isinstance(text, str):
        raise JsonRpcInvalidParams(f"{CMD_ACCEPTED}: uri and insertedText must be strings")
    start, end = range_(rng, "range")
    ls.last_accepted = {"uri": uri, "range": lsp_range(start, end), "text": text}
    stats.accepted(ls, uri, text)


def suggestion_accepted(ls: Sc2Server, *args: Any) -> None:
    accept(ls, command_args(args))
    return None


def attribution_target(ls: Sc2Server, params: Any):
    """(text, uri, range, offset -> document position or None) of an ``sc2lsp/attribution`` request."""
    text, uri, rng = field(params, "text"), field(params, "uri"), field(params, "range")
    if text is not None and not isinstance(text, str):
        raise JsonRpcInvalidParams("text must be a string")
    if uri is not None and not isinstance(uri, str):
        raise JsonRpcInvalidParams("uri must be a string")
    enc = ls.encoding
    if text is None and uri is None:
        if ls.last_accepted is None:
            raise RequestFailed("no suggestion accepted yet")
        acc = ls.last_accepted
        start = position(acc["range"]["start"], "range.start")
        return acc["text"], acc["uri"], acc["range"], lambda k, t=acc["text"]: advance(start, t[:k], enc)
    if text is not None and rng is not None:  # a text that sits at range.start (of uri, if given)
        start, end = range_(rng)
        return text, uri, lsp_range(start, end), lambda k: advance(start, text[:k], enc)
    if uri is None:
        return text, None, None, None
    doc = ls.docs.get(uri)
    if doc is None:
        doc, why = ls.read_unopened(uri)
        if doc is None:
            raise RequestFailed(why or f"unknown document {uri}")
    if doc.excluded is not None:  # a secret or ignored file is never attribution input
        return "", uri, None, None
    if text is not None:  # a text in that document: where it first occurs
        at = doc.text.find(text) if text else -1
        if at < 0:
            return text, uri, None, None
        return text, uri, lsp_range(doc.position_at(at, enc), doc.position_at(at + len(text), enc)), \
            lambda k: doc.position_at(at + k, enc)
    if rng is None:
        a, b = 0, len(doc.text)
    else:
        (l1, c1), (l2, c2) = range_(rng)
        a, b = doc.offset_at(l1, c1, enc), doc.offset_at(l2, c2, enc)
        if a is None or b is None:
            raise RequestFailed(f"range {l1}:{c1}-{l2}:{c2} is outside {uri} ({len(doc.line_starts())} lines)")
        a, b = min(a, b), max(a, b)
    whole = lsp_range(doc.position_at(a, enc), doc.position_at(b, enc))
    return doc.text[a:b], uri, whole, lambda k: doc.position_at(a + k, enc)


async def attribution(ls: Sc2Server, params: Any = None) -> dict:
    text, uri, rng, at = attribution_target(ls, params)
    if not text:
        return {"text": text, "uri": uri, "range": rng, "indexes": [], "spans": []}
    configured, model, roots = ls.settings.attribution_index, ls.settings.model, ls.workspaces.roots

    def work():
        paths = ls.attribution.indexes(configured, model)
        return ls.attribution.check(text, paths, exclude=roots, linked_from=None if configured else model)

    try:
        found = await asyncio.to_thread(work)
    except UserError as e:
        raise RequestFailed(str(e)) from None
    except Exception as e:  # a damaged index that passed the header checks, a bug: one error, keep serving
        log.exception("attribution check failed")
        raise RequestFailed(f"attribution check failed: {type(e).__name__}: {e}") from None
    spans = [dict(sp) for sp in found.spans]
    if at is not None:
        for sp in spans:
            sp["range"] = lsp_range(at(sp["start"]), at(sp["end"]))
    return {"text": text, "uri": uri, "range": rng, "indexes": list(found.indexes), "spans": spans}


def register(server: Sc2Server) -> None:
    server.feature(ATTRIBUTION)(attribution)
    server.command(CMD_ACCEPTED)(suggestion_accepted)
