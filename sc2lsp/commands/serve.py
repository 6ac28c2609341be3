"""``sc2lsp serve``: the language server as a command (stdio by default, ``--tcp HOST:PORT``).

The server itself is ``server.create_server``; this module only parses the command line, sets up
logging and the protocol's stdout, and closes the model and the workspace watchers on exit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from ..config import parse_settings
from ..errors import UserError
from ..lsp.server import create_server


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    p.add_argument("--tcp", metavar="HOST:PORT",
                   help="listen on a TCP socket instead of stdio: one session per connection; a host other than "
                        "127.0.0.1/::1/localhost needs a token ($SC2LSP_TCP_TOKEN or --token-file)")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="with --tcp: the token clients must send as initializationOptions.token (file mode 0600)")
    p.add_argument("--model", help="default model (a models.toml name or a .gguf path); the editor's settings win")
    p.add_argument("--threads", type=int, help="default llama.cpp threads (0 = automatic: 1 for a model under 200 MB, else one per core)")
    p.add_argument("--log-file", type=Path, help="write the server log here (stderr by default)")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run(args: argparse.Namespace) -> int:
    handler: logging.Handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("sc2lsp").setLevel(args.log_level)
    logging.getLogger("pygls").setLevel(logging.ERROR if args.log_level != "DEBUG" else logging.DEBUG)
    # the model thread releases the GIL in every llama.cpp call and must get it back at once: with
    # the default 5 ms switch interval a busy indexing thread made each sc2-tiny token wait ~5 ms
    sys.setswitchinterval(0.0005)
    raw: dict[str, Any] = {}
    if args.model:
        raw["model"] = args.model
    if args.threads is not None:
        raw["threads"] = args.threads
    base, problems = parse_settings(raw)
    if problems:
        raise UserError("; ".join(problems))
    if args.tcp:
        from ..lsp.tcp import serve_tcp, tcp_token

        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--tcp wants HOST:PORT, not {args.tcp!r}")
        token = tcp_token(host, getattr(args, "token_file", None))
        try:
            serve_tcp(host.strip("[]"), int(port), lambda: create_server(base), token=token)
        except OSError as e:
            raise UserError(f"cannot listen on {args.tcp}: {e.strerror or e}") from None
        except KeyboardInterrupt:
            pass
        return 0
    server = create_server(base)
    try:
        server.start_io(sys.stdin.buffer, protocol_stdout())
    finally:
        server.engine.close()  # stop the model thread and free the model before the interpreter exits
        server.workspaces.stop()
    return 0


def protocol_stdout():
    """A private handle on stdout for the protocol; fd 1 itself then points to stderr.

    llama-cpp-python silences model loading by pointing fds 1 and 2 at /dev/null for a moment
    (``suppress_stdout_stderr``): a response written in that window would vanish and its client
    would wait forever. Stray prints from any library land on stderr instead of corrupting the
    protocol stream.
    """
    import os

    sys.stdout.flush()
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return _ClientPipe(out)


class _ClientPipe:
    """The protocol's stdout. When the editor has closed its end (quit without a shutdown, e.g.
    Neovim's ``:qa!``), the pending answers are dropped: the descriptor is pointed at /dev/null
    instead of raising BrokenPipeError into pygls, which logged a traceback per answer and failed
    again sending the error."""

    def __init__(self, f):
        self._f = f
        self.gone = False

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self._gone()
            return len(data)

    def flush(self) -> None:
        try:
            self._f.flush()
        except (BrokenPipeError, ConnectionResetError):
            self._gone()
            self._f.flush()  # into /dev/null now

    def _gone(self) -> None:
        import os

        if not self.gone:
            self.gone = True
            logging.getLogger("sc2lsp.lsp").info("the editor closed the connection: answers are dropped")
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._f.fileno())
            os.close(null)

    def __getattr__(self, name: str):
        return getattr(self._f, name)
