"""Peak memory and time of converting a StarCoder2-3B-shaped checkpoint to Q4_K_M GGUF.

Builds once, cached in ``~/.cache/sc2lsp/bench/`` (``SC2LSP_BENCH_CACHE`` overrides):

* a 49,152-token StarCoder2-convention tokenizer trained on the Python standard library;
* a random-weight StarCoder2-3B-shaped HF checkpoint (30 layers, hidden 3072, 3.03B
  parameters), **f32 like the released starcoder2-3b**, written tensor by tensor as sharded
  safetensors (~5 GB shards + ``model.safetensors.index.json``); no torch model is built;

then converts it with the project converter (``sc2lsp.models.convert.convert_checkpoint``) in
a child process while sampling ``/proc/PID/status`` every 0.1 s, and reports peak RSS
(``ru_maxrss`` of that child from ``wait4``, and the sampled anonymous / file-backed split per
phase), time, and file sizes as a table and as JSON, with the ratio of peak RSS to the largest
tensor (the 49152x3072 f32 embedding, 604 MB).

    .venv/bin/python bench/convert_rss.py [--shape starcoder2-3b] [--type q4_k_m] [--json out.json]

Measured here (2 cores shared with three other jobs, load ~8): 12.12 GB f32 checkpoint in 3
shards -> 1.89 GB Q4_K_M in 657 s (write f16 96 s + llama.cpp quantize 561 s); peak RSS 1.11 GB
= 1.83x the largest tensor (write phase 0.96 GB, nearly all anonymous; quantize phase 1.11 GB,
0.78 GB anonymous + 0.33 GB of the memory-mapped f16 file).

A later benchmark gets the cached Q4_K_M GGUF with ``from bench.convert_rss import q4_k_m_gguf``.
Needs ~20 GB of free disk (12 GB checkpoint, 6 GB temporary f16 GGUF, 1.9 GB output).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # before bench/ itself: bench/finetune.py would shadow the package
    sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("SC2LSP_BENCH_CACHE", Path.home() / ".cache" / "sc2lsp" / "bench"))
VOCAB = 49152
SHARD_BYTES = 5_000_000_000
_ST_DTYPES = {"f32": ("F32", np.float32), "bf16": ("BF16", np.uint16)}


# ----------------------------------------------------------------------------- checkpoint


def tensor_specs(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of a Starcoder2ForCausalLM's parameters, in transformers' naming."""
    h, i, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kv = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    specs = [("model.embed_tokens.weight", (cfg["vocab_size"], h))]
    for layer in range(n):
        p = f"model.layers.{layer}."
        specs += [
            (p + "input_layernorm.weight", (h,)), (p + "input_layernorm.bias", (h,)),
            (p + "self_attn.q_proj.weight", (h, h)), (p + "self_attn.q_proj.bias", (h,)),
            (p + "self_attn.k_proj.weight", (kv, h)), (p + "self_attn.k_proj.bias", (kv,)),
            (p + "self_attn.v_proj.weight", (kv, h)), (p + "self_attn.v_proj.bias", (kv,)),
            (p + "self_attn.o_proj.weight", (h, h)), (p + "self_attn.o_proj.bias", (h,)),
            (p + "post_attention_layernorm.weight", (h,)), (p + "post_attention_layernorm.bias", (h,)),
            (p + "mlp.c_fc.weight", (i, h)), (p + "mlp.c_fc.bias", (i,)),
            (p + "mlp.c_proj.weight", (h, i)), (p + "mlp.c_proj.bias", (h,)),
        ]
    specs += [("model.norm.weight", (h,)), ("model.norm.bias", (h,))]
    if not cfg.get("tie_word_embeddings", True):
        specs.append(("lm_head.weight", (cfg["vocab_size"], h)))
    return specs


def _fill(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` float32 values: 1 for norm weights, 0 for biases, N(0, 0.02) otherwise."""
    if name.endswith("norm.weight"):
        return np.ones(n, dtype=np.float32)
    if name.endswith(".bias"):
        return np.zeros(n, dtype=np.float32)
    return rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)


def _encode(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "f32":
        return x
    u = x.view(np.uint32)  # bf16 with round-to-nearest-even
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_sharded_safetensors(out: Path, specs, dtype: str = "f32", shard_bytes: int = SHARD_BYTES, seed: int = 0) -> None:
    """Random weights for ``specs`` as sharded safetensors, generated and written ~16 MB at a time."""
    st_name, np_dtype = _ST_DTYPES[dtype]
    item = np.dtype(np_dtype).itemsize
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in specs:
        nbytes = int(np.prod(shape)) * item
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nbytes
    rng = np.random.default_rng(seed)
    weight_map, total = {}, 0
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, shape in shard:
            nbytes = int(np.prod(shape)) * item
            header[name] = {"dtype": st_name, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = fname
        total += offset
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with open(out / fname, "wb") as f:
            f.write(len(raw).to_bytes(8, "little") + raw)
            for name, shape in shard:
                n = int(np.prod(shape))
                for start in range(0, n, 4 << 20):
                    _encode(_fill(name, min(4 << 20, n - start), rng), dtype).tofile(f)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))


def bench_tokenizer() -> Path:
    """A 49,152-token StarCoder2-convention BPE trained on the stdlib (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"tokenizer-{VOCAB}"
    if (out / "tokenizer.json").is_file():
        return out
    from finetune.tokenizer import train_bpe

    lib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in lib.rglob("*.py") if "site-packages" not in p.parts)

    def texts(limit: int = 40_000_000):
        n = 0
        for p in files:
            try:
                t = p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            n += len(t)
            if n > limit:
                return
            yield t

    tok = train_bpe(texts(), vocab_size=VOCAB, show_progress=False)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out


def bench_checkpoint(shape: str = "starcoder2-3b", dtype: str = "f32") -> Path:
    """The cached random-weight HF checkpoint of ``shape`` (built tensor by tensor if missing)."""
    from finetune.model import starcoder2_config

    out = CACHE / f"{shape}-random-{dtype}"
    if (out / ".complete").is_file():
        return out
    tok_dir = bench_tokenizer()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cfg = starcoder2_config(shape, VOCAB)
    cfg.dtype = "float32" if dtype == "f32" else "bfloat16"
    cfg.to_json_file(out / "config.json")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(tok_dir / f, out / f)
    write_sharded_safetensors(out, tensor_specs(json.loads((out / "config.json").read_text())), dtype)
    (out / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    return out


# ----------------------------------------------------------------------------- measured conversion

_CHILD = (
    "import sys\n"
    "from sc2lsp.models.convert import convert_checkpoint\n"
    "convert_checkpoint(sys.argv[1], sys.argv[2], sys.argv[3], progress=lambda m: print(m, file=sys.stderr, flush=True))\n"
)


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def measure_conversion(hf_dir: Path, out: Path, type_: str) -> dict:
    """Run the converter in a child process; its peak RSS (total, anon, file) per phase and times."""
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(hf_dir), str(out), type_],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    phase = {"name": "write"}
    marks = {"write": t0}
    peaks: dict[str, dict[str, int]] = {"write": {}, "quantize": {}}
    tail: list[str] = []

    def read_stderr():
        for line in proc.stderr:
            tail.append(line.rstrip())
            del tail[:-20]
            if line.startswith("quantizing"):
                marks["quantize"] = time.time()
                phase["name"] = "quantize"

    def sample():
        while proc.returncode is None:
            for k, v in _status(proc.pid).items():
                p = peaks[phase["name"]]
                p[k] = max(p.get(k, 0), v)
            time.sleep(0.1)

    threads = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=sample, daemon=True)]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    end = time.time()
    threads[0].join(timeout=5)
    if proc.returncode != 0:
        raise SystemExit(f"conversion failed ({proc.returncode}):\n" + "\n".join(tail))
    q0 = marks.get("quantize", end)
    return {
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "peak_rss_children_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "seconds": round(end - t0, 1),
        "write_seconds": round(q0 - t0, 1),
        "quantize_seconds": round(end - q0, 1),
        "sampled_peaks": peaks,
    }


def q4_k_m_gguf(shape: str = "starcoder2-3b", dtype: str = "f32") -> Path:
    """The cached random-weight ``shape`` Q4_K_M GGUF (for latency benchmarks); built if missing."""
    from sc2lsp.models.convert import convert_checkpoint

    out = CACHE / f"{shape}-random-q4_k_m.gguf"
    if not out.is_file():
        convert_checkpoint(bench_checkpoint(shape, dtype), out, "q4_k_m")
    return out


def largest_tensor(hf_dir: Path) -> tuple[str, int, int]:
    """(name, bytes in the checkpoint, bytes as f32) of the largest tensor."""
    from sc2lsp.models.gguf_tensors import checkpoint_tensors

    ref = max(checkpoint_tensors(hf_dir).values(), key=lambda r: r.nbytes)
    return ref.name, ref.nbytes, 4 * int(np.prod(ref.shape))


def dir_bytes(d: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in d.glob(pattern))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="starcoder2-3b")
    ap.add_argument("--dtype", choices=list(_ST_DTYPES), default="f32", help="checkpoint dtype (release: f32)")
    ap.add_argument("--type", default="q4_k_m", choices=["f32", "f16", "q8_0", "q4_k_m"])
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--build-only", action="store_true", help="only build (or find) the cached checkpoint; print its path")
    args = ap.parse_args(argv)

    if args.build_only:
        print(bench_checkpoint(args.shape, args.dtype))
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(CACHE).free
    t0 = time.time()
    # built in a child: a fork inherits this process's RSS into the child's ru_maxrss, so this
    # process stays small (numpy only) and never imports transformers/tokenizers itself
    cmd = [sys.executable, __file__, "--shape", args.shape, "--dtype", args.dtype, "--build-only"]
    hf = Path(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    build_s = time.time() - t0
    out = CACHE / f"{args.shape}-random-{args.type}.gguf.bench"
    out.unlink(missing_ok=True)
    parent_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    m = measure_conversion(hf, out, args.type)
    name, nbytes, f32_bytes = largest_tensor(hf)
    result = {
        "shape": args.shape,
        "checkpoint_dtype": args.dtype,
        "type": args.type,
        "checkpoint_bytes": dir_bytes(hf, "*.safetensors"),
        "checkpoint_shards": len(list(hf.glob("*.safetensors"))),
        "checkpoint_build_seconds": round(build_s, 1),  # ~0 when cached
        "gguf_bytes": out.stat().st_size,
        "largest_tensor": name,
        "largest_tensor_bytes": nbytes,
        "largest_tensor_f32_bytes": f32_bytes,
        **m,
        "peak_rss_over_largest_tensor": round(m["peak_rss_bytes"] / f32_bytes, 2),
        "disk_free_before_bytes": free,
        "parent_rss_at_spawn_bytes": parent_rss,
        "cpu_count": os.cpu_count(),
    }
    final = CACHE / f"{args.shape}-random-{args.type}.gguf"
    if final.is_file():  # maybe in use by a latency benchmark: leave it, only compare
        result["same_size_as_cached_gguf"] = final.stat().st_size == out.stat().st_size
        out.unlink()
    else:
        out.replace(final)  # reused by q4_k_m_gguf()
    result["gguf"] = str(final)
    print(table(result))
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def table(r: dict) -> str:
    gb = lambda b: f"{b / 1e9:.2f} GB" if b >= 1e9 else f"{b / 1e6:.0f} MB"  # noqa: E731
    p = r["sampled_peaks"]
    rows = [
        ("checkpoint", f"{r['shape']} random, {r['checkpoint_dtype']}, {r['checkpoint_shards']} shards, {gb(r['checkpoint_bytes'])}"),
        ("largest tensor", f"{r['largest_tensor']} {gb(r['largest_tensor_f32_bytes'])} as f32"),
        ("output", f"{r['type']} {gb(r['gguf_bytes'])}"),
        ("time", f"{r['seconds']} s (write {r['write_seconds']} s + quantize {r['quantize_seconds']} s)"),
        ("peak RSS (ru_maxrss)", f"{gb(r['peak_rss_bytes'])} = {r['peak_rss_over_largest_tensor']}x largest tensor"),
    ]
    for ph in ("write", "quantize"):
        if p.get(ph):
            rows.append((f"  {ph} phase (sampled)",
                         f"RSS {gb(p[ph].get('VmRSS', 0))}: anon {gb(p[ph].get('RssAnon', 0))}, file-backed {gb(p[ph].get('RssFile', 0))}"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(w)} | {v} |" for k, v in rows)


if __name__ == "__main__":
    sys.exit(main())
