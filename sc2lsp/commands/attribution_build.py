"""``sc2lsp attribution build CORPUS... --out INDEX``: index corpus directories or files."""

from __future__ import annotations

import argparse
import sys

from ..attribution.build import DEFAULT_CAP, DEFAULT_STRIDE, MAX_STRIDE, add_to_index, build_index
from ..attribution.hashing import WINDOW


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus", nargs="+", help="directories (walked with the workspace ignore rules) or files")
    p.add_argument("--out", required=True, help="index directory to write")
    p.add_argument("--add", action="store_true", help="add to an existing index instead of replacing it")
    p.add_argument("--stride", type=int, default=DEFAULT_STRIDE,
                   help=f"index every STRIDE-th {WINDOW}-char window (<= {MAX_STRIDE}; copies of {WINDOW - 1}+STRIDE chars "
                        f"are always found; default {DEFAULT_STRIDE})")
    p.add_argument("--cap", type=int, default=DEFAULT_CAP, help=f"postings kept per window hash (default {DEFAULT_CAP})")
    p.add_argument("--store-text", action="store_true",
                   help="store the documents' text in the index (so it verifies without the corpus)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    progress = not args.no_progress
    if args.add:
        st = add_to_index(args.out, args.corpus, store_text=args.store_text, progress=progress)
    else:
        st = build_index(args.corpus, args.out, stride=args.stride, cap=args.cap,
                         store_text=args.store_text, progress=progress)
    mb = st.raw_bytes / 1e6
    pct = 100 * st.index_bytes / st.raw_bytes if st.raw_bytes else 0.0
    print(f"indexed {st.documents} documents ({mb:.1f} MB, {st.windows} windows) into {args.out} in "
          f"{st.seconds:.1f} s ({mb / max(st.seconds, 1e-9):.1f} MB/s); index {st.index_bytes / 1e6:.1f} MB "
          f"= {pct:.1f}% of the corpus; skipped {st.skipped} files", file=sys.stdout)
    for reason, n in sorted(st.skipped_reasons.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  skipped {n}: {reason}")
    return 0
