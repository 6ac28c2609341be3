"""Reading untyped request params and building protocol ranges; the RequestFailed error.

pygls hands params of custom requests (``sc2lsp/attribution``, ``sc2lsp/status``) and command
arguments over untyped (dicts or namedtuple-like objects); these helpers check them and raise
``InvalidParams`` with a sentence saying what was expected.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from .documents import Document


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed (-32803): the request was valid but could not be carried out."""

    CODE = types.LSPErrorCodes.RequestFailed.value
    MESSAGE = "Request Failed"

    def __init__(self, message: str):
        super().__init__(message=message, code=self.CODE)


def field(obj: Any, key: str) -> Any:
    """``obj[key]`` or ``obj.key``: pygls hands untyped params over as dicts or namedtuple-like objects."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def position(obj: Any, what: str) -> tuple[int, int]:
    line, char = field(obj, "line"), field(obj, "character")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (line, char)):
        raise JsonRpcInvalidParams(f"{what} must be {{line, character}} with non-negative integers")
    return line, char


def range_(obj: Any, what: str = "range") -> tuple[tuple[int, int], tuple[int, int]]:
    if obj is None or (not isinstance(obj, dict) and field(obj, "start") is None):
        raise JsonRpcInvalidParams(f"{what} must be {{start, end}}")
    return position(field(obj, "start"), f"{what}.start"), position(field(obj, "end"), f"{what}.end")


def lsp_range(start: tuple[int, int], end: tuple[int, int]) -> dict:
    return {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}}


def advance(start: tuple[int, int], text: str, encoding: str) -> tuple[int, int]:
    """The position after ``text`` inserted at ``start`` (LSP line breaks: \\n, \\r\\n, \\r)."""
    doc = Document("", text)
    line, char = doc.position_at(len(text), encoding)
    return (start[0] + line, char if line else start[1] + char)


def command_args(args: tuple) -> list:
    """The command's ``arguments`` list: pygls 2 spreads it over ``*args``; a client that wraps
    them in one more list is accepted too."""
    if len(args) == 1 and isinstance(args[0], (list, tuple)) and not isinstance(args[0], str):
        return list(args[0])
    return list(args)
