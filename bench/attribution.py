"""Attribution index at scale: build speed, index size, query latency and memory.

Indexes a corpus of at least 500 MB (default: the Python standard library this venv runs on,
both site-packages, /usr/include, /usr/lib/python3* and sibling CPython stdlibs), then checks 1 kB suggestions: copies of random indexed text
(positives) and this repository's own sources (negatives, not in the corpus). Every figure is
also given as a ratio against a reference measured in the same run:

* build MB/s vs **reading the corpus** (the same walk with the same scan rules, no indexing);
* index size vs the corpus size (target <= 10%);
* query p50/p95 vs a **plain ``str.find`` scan** of the raw corpus text for the suggestion's
  first 50 characters (what a check without an index costs), target p95 <= 10 ms;
* memory (peak RSS) of the build and of the query process vs the index size.

    .venv/bin/python bench/attribution.py [--corpus DIR ...] [--out INDEX] [--json out.json]
                                          [--baseline-rev REV] [--query-only INDEX [--rounds N]]

Build and queries run in child processes so each peak RSS is its own. With ``--baseline-rev``
the index is first built and queried with that git revision's code (``git archive``), then with
this one, one after the other on the same corpus and queries, and the after/before ratios are
printed too (the load average is recorded with each). ``--query-only INDEX`` skips the build:
only the queries run, against an index built already from the same corpus (``--out`` keeps one),
with ``--baseline-rev`` that revision's package and this one alternately, ``--rounds`` times,
both under this script's query phase (the same queries, own-code ones from this tree), with
p50/p95/mean per kind, wall-clock and the query thread's CPU time (``time.thread_time``: what
the load of a shared machine moves least), and how many queries got the very same answer
(spans, counts, sources).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def default_corpus() -> list[str]:
    """The standard library, the base interpreter's site-packages (the scan rules skip a nested
    ``site-packages``, so it is a root of its own), this venv's site-packages, the C headers in
    /usr/include, Debian's Python packages and the standard libraries of the other CPython
    versions installed beside this one: ~560 MB of Python, C and C++ here."""
    stdlib = sysconfig.get_paths()["stdlib"]
    roots = [stdlib, os.path.join(stdlib, "site-packages"), sysconfig.get_paths()["purelib"], "/usr/include",
             "/usr/lib/python3", f"/usr/lib/python3.{sys.version_info.minor}"]
    # other CPython versions installed next to this one (pyenv): near-duplicates of the stdlib
    versions = Path(stdlib).parents[2]
    roots += sorted(str(p) for p in versions.glob("3.1[0-9]*/lib/python3.1[0-9]") if p.resolve() != Path(stdlib).resolve())
    seen, out = set(), []
    for p in roots:
        rp = os.path.realpath(p)
        if Path(rp).is_dir() and rp not in seen:
            seen.add(rp)
            out.append(p)
    return out


def phase_read(corpus: list[str]) -> dict:
    from sc2lsp.attribution.build import BuildStats, iter_corpus

    st = BuildStats()
    t0 = time.perf_counter()
    n = nbytes = 0
    for doc in iter_corpus(corpus, st):
        n += 1
        nbytes += len(doc.text.encode("utf-8", "surrogatepass"))
    return {"documents": n, "bytes": nbytes, "seconds": time.perf_counter() - t0, "skipped": st.skipped}


def phase_build(corpus: list[str], out: str) -> dict:
    from sc2lsp.attribution import build_index

    st = build_index(corpus, out, progress=sys.stderr.isatty())
    return {"documents": st.documents, "raw_bytes": st.raw_bytes, "windows": st.windows, "entries": st.entries,
            "segments": st.segments, "index_bytes": st.index_bytes, "seconds": st.seconds,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _sections(out: str) -> dict:
    """Bytes per section kind, read from the segment headers directly (any format version)."""
    import struct

    import numpy as np

    sizes: dict[str, int] = {}
    for s in json.loads((Path(out) / "manifest.json").read_text())["segments"]:
        with open(Path(out) / s["file"], "rb") as f:
            hlen = struct.unpack("<I", f.read(16)[12:16])[0]
            header = json.loads(f.read(hlen))
        for name, (_, dtype, count) in header["sections"].items():
            nb = count if dtype == "bytes" else count * np.dtype(dtype).itemsize
            key = "doc_table" if name.startswith("doc_") else name
            sizes[key] = sizes.get(key, 0) + nb
    return sizes


def add_query_arguments(ap: argparse.ArgumentParser) -> None:
    """The query options the A/B benches share (``attribution_scan.py``, ``attribution_ab.py``):
    a pickle of ``(copied, own_code)`` texts, or this bench's recipe over a corpus."""
    ap.add_argument("--queries-pickle", default=None)
    ap.add_argument("--corpus", nargs="+", default=None)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)


def queries_of(args) -> tuple[list[str], list[str]]:
    """``(copied, own_code)`` query texts from ``add_query_arguments``' options."""
    if args.queries_pickle:
        import pickle

        with open(args.queries_pickle, "rb") as f:
            copied, own = pickle.load(f)
        return copied, own
    copied, own, _ = make_queries(args.corpus or default_corpus(), args.queries, args.seed)
    return copied, own


def make_queries(corpus: list[str], n: int, seed: int) -> tuple[list[str], list[str], list]:
    """The bench's queries: ``n`` 1 kB copies of indexed documents (picked in proportion to their
    size), ``n`` 1 kB pieces of this repository's own code, and the documents ``(root, path,
    size)`` the copies were picked from (``bench/attribution_scan.py`` uses them too)."""
    from sc2lsp.attribution.build import iter_corpus

    rng = random.Random(seed)
    docs = [(d.root, d.path, len(d.text)) for d in iter_corpus(corpus) if len(d.text) > 2000]
    weights = [x[2] for x in docs]
    positives = []
    for root, path, size in rng.choices(docs, weights=weights, k=n):
        text = (Path(root) / path).read_text(encoding="utf-8")
        a = rng.randrange(0, len(text) - 1000)
        positives.append(text[a : a + 1000])
    own = sorted((ROOT / "sc2lsp").rglob("*.py")) + sorted((ROOT / "finetune").rglob("*.py"))
    own_text = [p.read_text(encoding="utf-8") for p in own]
    own_text = [t for t in own_text if len(t) > 1200]
    negatives = []
    for _ in range(n):
        t = rng.choice(own_text)
        a = rng.randrange(0, len(t) - 1000)
        negatives.append(t[a : a + 1000])
    return positives, negatives, docs


def phase_query(corpus: list[str], out: str, n: int, seed: int) -> dict:
    import numpy as np

    from sc2lsp.attribution import AttributionIndex

    t0 = time.perf_counter()
    idx = AttributionIndex.open(out)
    open_s = time.perf_counter() - t0
    positives, negatives, docs = make_queries(corpus, n, seed)
    import sc2lsp

    res: dict = {"open_seconds": open_s, "package": str(Path(sc2lsp.__file__).parent)}
    idx.check(positives[-1])  # warm-up: imports and the hash tables' power cache
    for name, qs in (("positive", positives), ("negative", negatives)):
        lat, found, stage = [], 0, {"windows": 0, "bloom_pass": 0, "postings": 0, "chains": 0, "verified": 0}
        digests, cpu = [], []
        for q in qs:
            st: dict = {}
            t, c = time.perf_counter(), time.thread_time()
            spans = idx.check(q, stats=st)
            cpu.append(time.thread_time() - c)
            lat.append(time.perf_counter() - t)
            found += bool(spans)
            for k in stage:
                stage[k] += st.get(k, 0)
            digests.append(hashlib.sha1(json.dumps([x.to_dict() for x in spans], sort_keys=True).encode()).hexdigest())
        lat_ms, cpu_ms = np.asarray(lat) * 1000, np.asarray(cpu) * 1000
        res[name] = {"queries": len(qs), "with_span": found, "p50_ms": float(np.percentile(lat_ms, 50)),
                     "p95_ms": float(np.percentile(lat_ms, 95)), "mean_ms": float(lat_ms.mean()),
                     "max_ms": float(lat_ms.max()), "cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
                     "cpu_p95_ms": float(np.percentile(cpu_ms, 95)), "cpu_mean_ms": float(cpu_ms.mean()),
                     **stage, "digests": digests}
    res["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before the reference
    # reference: str.find over the raw corpus text for the first 50 chars of each of 5 suggestions
    texts = [(Path(r) / p).read_text(encoding="utf-8") for r, p, _ in docs]
    blob = "\x00".join(texts)
    del texts
    ref = []
    for q in positives[:3] + negatives[:2]:
        t = time.perf_counter()
        blob.find(q[:50])
        ref.append(time.perf_counter() - t)
    res["reference_find_ms"] = float(np.median(ref) * 1000)
    res["reference_corpus_chars"] = len(blob)
    del blob
    return res


def _child(phase: str, *args, options: tuple = (), script: Path = Path(__file__)) -> dict:
    cmd = [sys.executable, str(script), "--phase", phase, *map(str, options), *map(str, args)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"phase {phase} ({script}) failed ({r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(corpus: list[str], out: str, read: dict, args, script: Path = Path(__file__)) -> dict:
    """Build and query one index with the code next to ``script``; the figures and their ratios."""
    build = _child("build", out, *corpus, script=script)
    query = _child("query", out, *corpus, options=("--queries", args.queries, "--seed", args.seed),
                   script=script) if args.queries else {}
    mb = build["raw_bytes"] / 1e6
    build_mbs = mb / build["seconds"]
    read_mbs = read["bytes"] / 1e6 / read["seconds"]
    result = {
        "corpus": corpus, "corpus_mb": mb, "documents": build["documents"], "windows": build["windows"],
        "postings": build["entries"], "segments": build["segments"], "build_seconds": build["seconds"],
        "build_mb_s": build_mbs, "read_mb_s": read_mbs, "build_vs_read": build_mbs / read_mbs,
        "index_mb": build["index_bytes"] / 1e6, "index_pct_of_corpus": 100 * build["index_bytes"] / build["raw_bytes"],
        "bytes_per_window": build["index_bytes"] / max(1, build["windows"]),
        "index_sections_mb": {k: v / 1e6 for k, v in _sections(out).items()},
        "build_peak_rss_mb": build["peak_rss_bytes"] / 1e6, "query": query,
    }
    if query:
        result["query_p95_vs_find"] = query["reference_find_ms"] / query["positive"]["p95_ms"]
        result["query_peak_rss_mb"] = query["peak_rss_bytes"] / 1e6
    return result


def rows_of(r: dict, tag: str = "") -> list[tuple[str, str, str]]:
    rows = [
        (f"{tag}corpus", f"{r['corpus_mb']:.0f} MB, {r['documents']} files, {r['windows']} windows", ""),
        (f"{tag}build", f"{r['build_mb_s']:.1f} MB/s ({r['build_seconds']:.0f} s)",
         f"{r['build_vs_read']:.2f}x reading the corpus ({r['read_mb_s']:.0f} MB/s)"),
        (f"{tag}index size", f"{r['index_mb']:.1f} MB = {r['index_pct_of_corpus']:.1f}% of corpus",
         f"{r['bytes_per_window']:.2f} bytes/window; target <= 10%"),
        (f"{tag}build peak RSS", f"{r['build_peak_rss_mb']:.0f} MB", f"{r['build_peak_rss_mb'] / r['corpus_mb']:.2f}x corpus"),
    ]
    query = r["query"]
    if query:
        for name in ("positive", "negative"):
            q = query[name]
            rows.append((f"{tag}query 1 kB {name}", f"p50 {q['p50_ms']:.2f} ms, p95 {q['p95_ms']:.2f} ms, max {q['max_ms']:.1f} ms",
                         f"{q['with_span']}/{q['queries']} with a span; p95 {query['reference_find_ms'] / q['p95_ms']:.0f}x faster than str.find ({query['reference_find_ms']:.0f} ms)"))
        neg = query["negative"]
        rows.append((f"{tag}filter pass (negatives)", f"{neg['bloom_pass'] / max(1, neg['windows']):.4f} of windows",
                     "incl. true hits on shared code"))
        rows.append((f"{tag}query peak RSS", f"{r['query_peak_rss_mb']:.0f} MB", f"{r['query_peak_rss_mb'] / r['index_mb']:.1f}x index (incl. the list of corpus files for sampling)"))
    return rows


def compare(new: dict, old: dict) -> dict:
    """After / before ratios of the figures the issue names (size, build speed, query latency)."""
    out = {"index_size": new["index_mb"] / old["index_mb"], "build_mb_s": new["build_mb_s"] / old["build_mb_s"]}
    if new["query"] and old["query"]:
        for name in ("positive", "negative"):
            for k in ("p50_ms", "p95_ms"):
                out[f"{name}_{k}"] = new["query"][name][k] / old["query"][name][k]
    return out


def extract_rev(rev: str, dest: Path, paths: tuple[str, ...] = ("sc2lsp",)) -> Path:
    """``paths`` of git revision ``rev`` extracted into ``dest`` (``git archive``), with that
    revision's compiled kernels built in place when it has them (``setup.py``), as an install
    would: a baseline then runs the code its users ran, not its Python fallback."""
    has_setup = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{rev}:setup.py"],
                               stderr=subprocess.DEVNULL).returncode == 0
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *paths, *(["setup.py"] if has_setup else [])],
                             stdout=subprocess.PIPE, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    if has_setup:
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=dest,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return dest


def baseline_code(rev: str) -> Path:
    """The bench and package of git revision ``rev``, extracted to a temporary directory."""
    d = extract_rev(rev, Path(tempfile.mkdtemp(prefix="sc2lsp-attr-base-")), ("sc2lsp", "bench", "finetune"))
    return d / "bench" / "attribution.py"


def query_only(corpus: list[str], index: str, args) -> dict:
    """Only the query phase, against an index built already: with ``--baseline-rev`` that
    revision's package and this one alternately, ``--rounds`` times, and the medians' ratios.
    Both run this script's query phase (``--code`` puts the baseline's package first on the
    path), so both get the same queries, own-code ones included; each query's answer is
    hashed, and the runs' answers are compared query by query."""
    codes = [("before", baseline_code(args.baseline_rev).parents[1])] if args.baseline_rev else []
    codes.append(("after", ROOT))
    runs: dict[str, list] = {tag: [] for tag, _ in codes}
    for _ in range(max(1, args.rounds)):
        for tag, code in codes:
            q = _child("query", index, *corpus, options=("--queries", args.queries, "--seed", args.seed,
                                                         "--code", code))
            q["load_average"] = os.getloadavg()
            runs[tag].append(q)
            print(f"{tag}: " + ", ".join(
                f"{label} {pre}p50/p95/mean {q[kind][pre + 'p50_ms']:.2f}/{q[kind][pre + 'p95_ms']:.2f}/"
                f"{q[kind][pre + 'mean_ms']:.2f} ms" for label, kind in (("copied", "positive"), ("own code", "negative"))
                for pre in ("", "cpu_")) + f", load {q['load_average'][0]:.1f}", file=sys.stderr)

    def med(tag: str, kind: str, key: str) -> float:
        return float(sorted(r[kind][key] for r in runs[tag])[len(runs[tag]) // 2])

    keys = ("p50_ms", "p95_ms", "mean_ms", "cpu_p50_ms", "cpu_p95_ms", "cpu_mean_ms")
    result: dict = {"index": index, "runs": runs, "median": {
        tag: {kind: {key: med(tag, kind, key) for key in keys} for kind in ("positive", "negative")}
        for tag in runs}}
    if "before" in runs:
        result["after_vs_before"] = {f"{kind} {key}": med("after", kind, key) / med("before", kind, key)
                                     for kind in ("positive", "negative") for key in keys}
        result["same_answers"] = {kind: sum(a == b for a, b in zip(runs["before"][0][kind]["digests"],
                                                                  runs["after"][0][kind]["digests"]))
                                  for kind in ("positive", "negative")}
        shutil.rmtree(codes[0][1], ignore_errors=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", nargs="+", default=None)
    ap.add_argument("--out", default=None, help="index directory (default: a temporary one)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-rev", default=None,
                    help="first build and query with this git revision's code (before/after in one run)")
    ap.add_argument("--query-only", metavar="INDEX", default=None,
                    help="only query this index (built already from the same corpus)")
    ap.add_argument("--rounds", type=int, default=1, help="--query-only: runs of each code, alternated")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--code", default=None, help=argparse.SUPPRESS)  # child: import sc2lsp from here
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:  # child: --phase NAME OUT CORPUS...
        if args.code:
            sys.path.insert(0, str(Path(args.code).resolve()))
        out, corpus = args.rest[0], args.rest[1:]
        if args.phase == "read":
            r = phase_read(corpus)
        elif args.phase == "build":
            r = phase_build(corpus, out)
        else:
            r = phase_query(corpus, out, args.queries, args.seed)
        print(json.dumps(r))
        return 0
    corpus = args.corpus or default_corpus()
    if args.query_only:
        result = query_only(corpus, args.query_only, args)
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        return 0
    tmp = tempfile.TemporaryDirectory(prefix="sc2lsp-attr-bench-")
    out = args.out or os.path.join(tmp.name, "index")
    print(f"corpus: {' '.join(corpus)}", file=sys.stderr)
    read = _child("read", out, *corpus)  # also warms the page cache for the build
    read = _child("read", out, *corpus)
    rows, old = [], None
    if args.baseline_rev:
        script = baseline_code(args.baseline_rev)
        old = measure(corpus, os.path.join(tmp.name, "baseline-index"), read, args, script)
        old["revision"] = args.baseline_rev
        old["load_average"] = os.getloadavg()
        rows += rows_of(old, f"before ({args.baseline_rev}): ")
        shutil.rmtree(script.parents[1], ignore_errors=True)
    result = measure(corpus, out, read, args)
    result["load_average"] = os.getloadavg()
    rows += rows_of(result, "after: " if old else "")
    if old:
        result["baseline"] = old
        result["after_vs_before"] = compare(result, old)
        rows.append(("after / before", ", ".join(f"{k} {v:.2f}x" for k, v in result["after_vs_before"].items()), ""))
    w = max(len(r[0]) for r in rows)
    for a, b, c in rows:
        print(f"{a:<{w}}  {b:<52}  {c}")
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
