"""llama.cpp backend through llama-cpp-python: the only module in sc2lsp that imports llama_cpp.

The FIM prompt is always a string built by ``sc2lsp.core.prompt`` and tokenized with special
tokens recognised (llama-cpp-python's own ``suffix=`` FIM path uses wrong token ids).
Consecutive calls share the longest common token prefix of the KV cache.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError
from .base import Generation, Timings


@dataclass
class LlamaSettings:
    n_ctx: int = 2048
    n_threads: int = 0  #: 0 = number of cores
    n_gpu_layers: int = 0  #: -1 = all layers on the GPU (needs a CUDA/Metal build of llama-cpp-python)
    n_batch: int = 512
    seed: int = 0


class LlamaCppBackend:
    def __init__(self, model_path: str | Path, settings: LlamaSettings | None = None):
        from ..models.gguf_check import check_gguf

        self.settings = s = settings or LlamaSettings()
        self.model_path = Path(model_path)
        check_gguf(self.model_path)
        import llama_cpp

        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=s.n_ctx,
                n_threads=s.n_threads or os.cpu_count(),
                n_gpu_layers=s.n_gpu_layers,
                n_batch=s.n_batch,
                seed=s.seed,
                verbose=False,
            )
        except Exception as e:  # llama.cpp reports load failures as a bare ValueError/RuntimeError
            raise UserError(f"llama.cpp could not load {self.model_path}: {e}") from None
        self.name = self.model_path.name
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self.n_ctx = self.llm.n_ctx()

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(ids)).decode("utf-8", errors="replace")

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        time_limit_s: float | None = None,
        should_stop: Callable[[], bool] | None = None,
        stop: Sequence[str] = (),
    ) -> Generation:
        """Greedy generation after ``prompt``; stops on end-of-generation tokens (EOS, ``<file_sep>``)."""
        llm = self.llm
        tokens = self.tokenize(prompt)
        if len(tokens) + max_tokens > self.n_ctx:
            raise UserError(f"prompt of {len(tokens)} tokens + {max_tokens} new does not fit n_ctx={self.n_ctx}")
        t = Timings(prompt_tokens=len(tokens))
        t0 = time.perf_counter()
        # longest common prefix with what the KV cache holds
        reuse = 0
        for a, b in zip(llm._input_ids[: llm.n_tokens].tolist(), tokens):
            if a != b:
                break
            reuse += 1
        reuse = min(reuse, len(tokens) - 1)  # the last prompt token must be evaluated to get logits
        llm.n_tokens = reuse
        llm._ctx.kv_cache_seq_rm(-1, reuse, -1)
        t.prompt_tokens_reused = reuse
        llm.eval(tokens[reuse:])
        t1 = time.perf_counter()
        t.prompt_ms = (t1 - t0) * 1000
        out: list[int] = []
        reason = "length"
        deadline = None if time_limit_s is None else t0 + time_limit_s
        text = ""
        while len(out) < max_tokens:
            tok = llm.sample(temp=0.0)
            if self._is_eog(llm._model.vocab, tok):
                reason = "stop"
                break
            out.append(tok)
            text = self.detokenize(out)
            if any(s in text for s in stop):
                text = text[: min(text.index(s) for s in stop if s in text)]
                reason = "stop"
                break
            if should_stop is not None and should_stop():
                reason = "cancelled"
                break
            if deadline is not None and time.perf_counter() > deadline:
                reason = "time"
                break
            llm.eval([tok])
        t.generated_tokens = len(out)
        t.generate_ms = (time.perf_counter() - t1) * 1000
        return Generation(text=text if out else "", stop_reason=reason, timings=t)
