"""``make demo``: drive ``sc2lsp serve`` over stdio the way an editor does, and show the latencies.

Starts the server as a subprocess, opens ``examples/demo/geometry.py`` in the ``examples/demo``
workspace, asks for an inline completion where a programmer would (``return `` in
``Point.distance``), then types: first what the ghost text says (answered from the shown
suggestion, no model call), then something else (the model again, with the prompt cached up to
the cursor), then moves to another function and back (a saved KV state).

    python -m sc2lsp.demo [--model NAME_OR_GGUF] [--file F --line L --col C]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .lsp.rawclient import StdioClient

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "examples" / "demo"


def _ghost(line_before: str, suggestion: str) -> str:
    """The cursor's line with the suggestion shown as ghost text (dim on a terminal)."""
    dim, reset = ("\x1b[2m", "\x1b[0m") if sys.stdout.isatty() else ("«", "»")
    shown = suggestion.replace("\n", "\n    ")
    return f"    {line_before}{dim}{shown}{reset}"


class Session:
    def __init__(self, client: StdioClient, uri: str, text: str):
        self.c, self.uri, self.text, self.version = client, uri, text, 1
        self.rows: list[tuple[str, float, dict]] = []

    def position(self, offset: int) -> tuple[int, int]:
        before = self.text[:offset]
        line = before.count("\n")
        return line, len(before) - (before.rfind("\n") + 1)  # ASCII demo file: code points == UTF-16

    def type(self, offset: int, chars: str) -> int:
        line, col = self.position(offset)
        self.version += 1
        self.c.change(self.uri, self.version, chars, (line, col))
        self.text = self.text[:offset] + chars + self.text[offset:]
        return offset + len(chars)

    def ask(self, offset: int, label: str) -> str:
        line, col = self.position(offset)
        t0 = time.perf_counter()
        items = self.c.inline(self.uri, line, col, timeout=300)
        ms = (time.perf_counter() - t0) * 1000
        last = self.c.status()["last"]
        self.rows.append((label, ms, last))
        return items[0]["insertText"] if items else ""


def _row(label: str, ms: float, last: dict) -> str:
    src = last.get("source", "?")
    if src == "model":
        detail = (f"prompt {last['prompt_tokens']} tok ({last['prompt_tokens_reused']} reused, "
                  f"{last['prompt_tokens_evaluated']} evaluated{', state restored' if last.get('state_loads') else ''}) "
                  f"{last['prompt_ms']:.1f} ms | {last['generated_tokens']} tok in {last['generate_ms']:.1f} ms")
    else:
        detail = "the rest of the shown suggestion, no model call"
    return f"  {label:<34} {ms:8.1f} ms  {src:<12} {detail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sc2lsp.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sc2-tiny")
    ap.add_argument("--file", type=Path, default=DEMO_DIR / "geometry.py")
    ap.add_argument("--line", type=int, default=14, help="1-based line of the first request")
    ap.add_argument("--col", type=int, default=16, help="1-based column of the first request")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)

    path = args.file.resolve()
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    offset = sum(len(x) + 1 for x in lines[: args.line - 1]) + args.col - 1

    print(f"$ sc2lsp serve   (stdio; workspace {path.parent.relative_to(ROOT) if path.is_relative_to(ROOT) else path.parent})")
    t0 = time.perf_counter()
    c = StdioClient([sys.executable, "-m", "sc2lsp.cli", "serve"], cwd=ROOT)
    try:
        # no time caps: on a busy machine the demo should still show a suggestion, only slower
        options = {"model": args.model, "threads": args.threads, "maxPromptMs": 600_000, "maxPredictMs": 600_000}
        caps = c.initialize(path.parent, options)["capabilities"]
        st = c.wait_ready(timeout=300)
        if st["state"] != "ready":
            print(f"model did not load: {st['error']}", file=sys.stderr)
            for m in c.messages():
                print(f"  window/showMessage: {m['message']}", file=sys.stderr)
            return 1
        print(f"initialized + model loaded in {(time.perf_counter() - t0) * 1000:.0f} ms: {st['model_path']} "
              f"({st['device']}, n_ctx {st['n_ctx']}); inlineCompletionProvider: {'inlineCompletionProvider' in caps}")
        uri = path.as_uri()
        c.open(uri, text)
        s = Session(c, uri, text)

        print(f"\n{path.name}:{args.line}:{args.col}, first request (cold prompt):")
        first = s.ask(offset, "first request (cold)")
        line_before = s.text[: offset].rsplit("\n", 1)[-1]
        print(_ghost(line_before, first) if first else "    (no suggestion)")

        if first:
            # type the first characters of the ghost text: answered from the suggestion itself
            pos = offset
            for ch in first.split("\n", 1)[0][:3]:
                pos = s.type(pos, ch)
                s.ask(pos, f"typed {ch!r} (follows the suggestion)")
        else:
            pos = offset
        # type something the suggestion did not say: the model again, prompt cached up to the cursor
        for ch in "(se":
            pos = s.type(pos, ch)
            rest = s.ask(pos, f"typed {ch!r} (diverges)")
        line_before = s.text[: pos].rsplit("\n", 1)[-1]
        print("\nafter typing:")
        print(_ghost(line_before, rest) if rest else "    (no suggestion)")

        # another function, then back: the first place's prompt comes back from a saved KV state
        other = s.text.index("    n = len(points)\n") + len("    n = len(points)\n    ")
        s.ask(other, "moved to centroid() (new place)")
        s.ask(pos, "moved back (saved state)")

        print("\nrequest latency as the client sees it (round trip over stdio):")
        for label, ms, last in s.rows:
            print(_row(label, ms, last))
        st = c.status()
        t = st["totals"]
        print(f"\ntotals: {t['requests']} requests, {t['model_requests']} model calls, {t['typed_along']} answered "
              f"from the shown suggestion; prompt tokens {t['prompt_tokens']} of which {t['prompt_tokens_reused']} "
              f"reused from the KV cache; saved states {st['cache']['saved_states']}")
    finally:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
