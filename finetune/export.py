"""Export a trained run to what the server loads: an HF checkpoint directory and a GGUF.

``export_run(run_dir, out_dir, name)`` copies ``RUN/hf`` (safetensors + tokenizer) to ``OUT/hf``,
converts it to ``OUT/NAME-q8_0.gguf`` with the project's converter, and measures the GGUF on the
held-out files of the run's data (next-line exact match through llama.cpp) and its speed, writing
``OUT/metrics.json``.

``build_stdlib_attribution_index(out)`` indexes sc2-tiny's training corpus (the standard library
files ``prepare-stdlib`` keeps) for attribution; models.toml links it to sc2-tiny
(``models/sc2-tiny/attribution``, built by ``make attribution-index``, not shipped: ~6 MB that
depend on the interpreter's stdlib).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

HF_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def export_run(run_dir: str | Path, out_dir: str | Path, name: str, *, quant: str = "q8_0", per_file: int = 6, threads: int = 1) -> dict:
    from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings
    from sc2lsp.models.convert import convert_checkpoint

    from .evaluate import evaluate, load_heldout, next_line_cases

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    hf_out = out_dir / "hf"
    hf_out.mkdir(parents=True, exist_ok=True)
    for f in HF_FILES:
        if (run_dir / "hf" / f).exists():
            shutil.copy2(run_dir / "hf" / f, hf_out / f)
    gguf = out_dir / f"{name}-{quant}.gguf"
    t0 = time.time()
    convert_checkpoint(hf_out, gguf, quant)
    convert_s = time.time() - t0

    train_cfg = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    data = Path(train_cfg["data"])
    cases = next_line_cases(load_heldout(data / "heldout_files.json"), per_file=per_file, seed=0)
    backend = LlamaCppBackend(gguf, LlamaSettings(n_threads=threads))
    quality = evaluate(backend, cases)
    speed = measure_speed(backend)
    metrics = {
        "name": name,
        "gguf": gguf.name,
        "gguf_bytes": gguf.stat().st_size,
        "safetensors_bytes": (hf_out / "model.safetensors").stat().st_size,
        "convert_seconds": round(convert_s, 1),
        **summary,
        "heldout_next_line": {k: v for k, v in quality.items()},
        "speed": speed,
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False))
    return metrics


def measure_speed(backend, prompt_tokens: int = 512, gen_tokens: int = 128) -> dict:
    """Prompt processing and generation tokens/s of ``backend`` on a cold prompt (no KV reuse)."""
    from sc2lsp.core.prompt import infill_prompt

    text = "def f(x):\n    return x + 1\n" * 200
    ids = backend.tokenize(text)[:prompt_tokens]
    prompt = backend.detokenize(ids)
    backend.llm.reset()
    g = backend.generate(infill_prompt(prompt, "", path="speed.py"), max_tokens=gen_tokens, stop=())
    t = g.timings
    return {
        "threads": backend.settings.n_threads or "all",
        "prompt_tokens": t.prompt_tokens,
        "prompt_tok_per_s": round(t.prompt_tokens_evaluated / (t.prompt_ms / 1000), 1),
        "generated_tokens": t.generated_tokens,
        "gen_tok_per_s": round(t.generated_tokens / max(t.generate_ms / 1000, 1e-9), 1),
    }


def build_stdlib_attribution_index(out: str | Path, *, root: str | Path | None = None, max_files: int = 0) -> dict:
    """The attribution index of the standard library files sc2-tiny trains on (same selection as
    ``prepare-stdlib``: ``.py`` files outside tests/encodings/pydoc_data that pass the filters).
    Documents point at the files on disk (verified by their git blob hash), license PSF-2.0."""
    import sys

    from sc2lsp.attribution.build import Document, build_index

    from .data.collect import STDLIB_EXCLUDE, collect, stdlib_root

    root = Path(root) if root else stdlib_root()
    kept = [c for c in collect(root, (".py",), STDLIB_EXCLUDE) if c.text is not None]
    if max_files:
        kept = kept[:max_files]
    version = ".".join(map(str, sys.version_info[:3]))
    docs = (Document(path=c.path, text=c.text, repository=f"cpython-stdlib-{version}", revision=version,
                     license="PSF-2.0", license_source="python-stdlib", root=str(root.resolve())) for c in kept)
    stats = build_index(docs, out)
    return {"path": str(out), "documents": stats.documents, "raw_bytes": stats.raw_bytes,
            "index_bytes": stats.index_bytes, "seconds": round(stats.seconds, 1)}
