"""``sc2lsp attribution serve --index INDEX``: the /overlap and /check HTTP API (127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import logging
import os

from ..errors import UserError
from .attribution_check import ENV_INDEX


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", help=f"index directory (default: ${ENV_INDEX})")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--exclude", action="append", default=[], metavar="PATH",
                   help="never match documents under PATH; repeatable")
    p.add_argument("--min-chars", type=int, default=50)


def run(args: argparse.Namespace) -> int:
    from ..attribution.query import AttributionIndex
    from ..attribution.server import AttributionServer

    path = args.index or os.environ.get(ENV_INDEX)
    if not path:
        raise UserError(f"give --index INDEX (or set {ENV_INDEX})")
    index = AttributionIndex.open(path)
    try:
        server = AttributionServer(index, args.host, args.port, exclude=tuple(args.exclude), min_chars=args.min_chars)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from e
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = index.info()
    print(f"serving {path} ({info['documents']} documents) on {server.url}  "
          "(POST /overlap, POST /check, GET /health)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
