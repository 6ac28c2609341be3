"""``sc2lsp attribution check [--index INDEX | --url URL] [--json] < FILE``: spans found in a corpus."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import UserError
from ..attribution.query import COMMON_THRESHOLD, DEFAULT_MAX_SOURCES, DEFAULT_MIN_CHARS, MAX_QUERY_CHARS

ENV_INDEX = "SC2LSP_ATTRIBUTION_INDEX"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", help=f"index directory (default: ${ENV_INDEX})")
    p.add_argument("--url", help="check against an /overlap server instead (a team index or a public portrait)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--min-chars", type=int, default=DEFAULT_MIN_CHARS, help="shortest span reported")
    p.add_argument("--max-sources", type=int, default=DEFAULT_MAX_SOURCES, help="sources listed per span")
    p.add_argument("--exclude", action="append", default=[], metavar="PATH",
                   help="never match documents under PATH (your workspace); repeatable")
    p.add_argument("file", nargs="?", help="file to check (default: standard input)")


def _read_input(path: str | None) -> str:
    try:
        data = open(path, "rb").read(MAX_QUERY_CHARS * 4 + 1) if path else sys.stdin.buffer.read(MAX_QUERY_CHARS * 4 + 1)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"the input is not valid UTF-8 (byte {e.start}); give UTF-8 text") from e


def run(args: argparse.Namespace) -> int:
    text = _read_input(args.file)
    if args.url:
        from ..attribution.server import OverlapClient

        spans = [list(s) for s in OverlapClient(args.url).overlap(text)]
        if args.json:
            print(json.dumps({"spans": spans}))
        else:
            for a, b in spans:
                print(f"chars {a}-{b}: {text[a:b][:70]!r}")
            if not spans:
                print(f"no overlap found by {args.url}")
        return 0
    path = args.index or os.environ.get(ENV_INDEX)
    if not path:
        raise UserError(f"give --index INDEX (or set {ENV_INDEX}) or --url URL")
    from ..attribution.query import AttributionIndex

    index = AttributionIndex.open(path)
    spans = index.check(text, exclude=args.exclude, min_chars=args.min_chars, max_sources=args.max_sources)
    if args.json:
        print(json.dumps({"spans": [s.to_dict() for s in spans], "index": index.info()}, indent=1))
        return 0
    if not spans:
        print(f"no span of {args.min_chars}+ characters found in {path} ({index.info()['documents']} indexed documents)")
        return 0
    for s in spans:
        l1 = text.count("\n", 0, s.start) + 1
        l2 = text.count("\n", 0, max(s.start, s.end - 1)) + 1
        label = {"copy": "copied", "common": f"common pattern (more than {COMMON_THRESHOLD} documents)",
                 "license_text": "license text"}[s.kind]
        approx = "" if s.documents_exact else "about "
        print(f"lines {l1}-{l2} (chars {s.start}-{s.end}, {s.length} normalised): {label}, "
              f"in {approx}{s.documents} document{'s' if s.documents != 1 else ''}")
        for src in s.sources:
            where = f":{src.start_line}-{src.end_line}" if src.start_line else ""
            rev = f"@{src.revision[:12]}" if src.revision else ""
            note = "" if src.verified else " (unverified: file changed or missing)"
            print(f"  {src.repository}{rev} {src.path}{where}  license: {src.license or 'unknown'}{note}")
    return 0
