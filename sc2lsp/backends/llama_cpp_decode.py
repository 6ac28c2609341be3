"""The llama.cpp backend's model passes (a mixin of ``LlamaCppBackend``): their row shapes
(``_rows``: one row, or two where exact speculation needs it, and what a padded pass costs here),
the batch written through numpy views of llama.cpp's arrays, logits only for the rows needed, read
as numpy views without copies, and the rollback of rejected draft tokens. Uses the backend's
``llm``, ``settings``, ``speculative``, ``flash_attn``, ``_pad`` and ``_n_vocab``; runs on the
worker thread like the rest of it.
"""

from __future__ import annotations

import time

from .speculative import DraftPolicy


class DecodeMixin:
    def _rows(self, s, threads: int) -> None:
        """The row shapes of generation passes, which follow ``speculative``: ``_pad``,
        ``_same_shape`` and the draft policy's base rows."""
        #: speculative passes always have 2+ rows: without flash attention a one-row pass rounds its
        #: attention matmuls differently from a batch's rows (ggml's vec_dot vs tinyBLAS: 51 of
        #: 1,989 positions differed on sc2-tiny), and with several threads a one-row
        #: flash-attention pass splits the cache between threads. Without speculation nothing is
        #: checked against a batch's rows, so passes keep one row (a padded pass cost the 3B-shaped
        #: Q4_K_M 1.57x a one-row pass on 2 threads here)
        auto_pad = self.speculative and (threads > 1 or not self.flash_attn)
        self._pad = auto_pad if s.stable_rows is None else s.stable_rows
        self._thread_clock = threads == 1  # pass costs on this thread's CPU clock (load-proof)
        #: a lone token's pass computes logits for its second row too (the shape of a pass with one
        #: drafted token): llama.cpp builds its graph again whenever a pass's shape differs from the
        #: one before (~0.08 of a sc2-tiny pass; the second row's logits cost ~0.03), else reuses it
        self._same_shape = bool(self.speculative and self._pad)
        self.policy = DraftPolicy(max_draft=s.draft_max, base_rows=2 if self._pad else 1)

    def _pad_cost(self, reps: int = 3) -> float:
        """A padded lone-token pass (two rows, the second thrown away) in one-row passes: the
        fastest of ``reps`` of each, interleaved, by the wall clock (the other threads' work
        counts), after the warm-up pass."""
        tok = self.tokenize("\n")[-1:]
        best = {False: float("inf"), True: float("inf")}
        kept = self._pad
        try:
            for _ in range(reps):
                for padded in (False, True):
                    self._pad = padded
                    t0 = time.perf_counter()
                    self._decode(tok, all_logits=False)
                    best[padded] = min(best[padded], time.perf_counter() - t0)
                    self._rollback(0)
        finally:
            self._pad = kept
        return best[True] / best[False]

    def _batch_views(self) -> None:
        """numpy views of the llama_batch's token, position and logits-flag arrays, written in one
        step per pass (llama-cpp-python's ``set_batch`` loops in Python over every field of every
        row); every row is in sequence 0, as ``set_batch`` also writes it."""
        import ctypes

        import numpy as np

        import llama_cpp

        llm = self.llm
        batch, n = llm._batch.batch, llm.n_batch
        self._tok = np.ctypeslib.as_array(batch.token, shape=(n,))
        self._pos = np.ctypeslib.as_array(batch.pos, shape=(n,))
        self._flags = np.ctypeslib.as_array(batch.logits, shape=(n,))
        np.ctypeslib.as_array(batch.n_seq_id, shape=(n,))[:] = 1
        for i in range(n):
            batch.seq_id[i][0] = 0
        self._mem = llama_cpp.llama_get_memory(llm._ctx.ctx)
        self._llama_decode, self._seq_rm = llama_cpp.llama_decode, llama_cpp.llama_memory_seq_rm
        # the logits buffer's address as an int (one call, no ctypes pointer object), and views of
        # it by (address, rows): numpy's as_array on a ctypes pointer costs ~20 us a pass
        self._logits_addr = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(
            ("llama_get_logits", llama_cpp.llama_cpp._lib))
        self._views: dict[tuple[int, int], object] = {}
        self._eog: dict[int, bool] = {}

    def _decode(self, toks: list[int], all_logits: bool, pad_logits: bool = False):
        """Evaluate ``toks`` after the cache (one model pass); the logits of the last token, or of
        every token (a ``len(toks)`` x vocabulary array, valid until the next pass). A lone token
        gets a second row where passes must be batches (``_pad``): logits only for the real row
        (with ``pad_logits`` for the second row too: the pass then has the shape of a pass over
        two tokens, so llama.cpp reuses the graph of the one before), and the second row's cache
        cell removed."""
        import ctypes

        import numpy as np

        llm = self.llm
        n_past, k = llm.n_tokens, len(toks)
        pad = self._pad and k == 1
        rows = k + pad
        self._tok[:k] = toks
        self._tok[k: rows] = toks[-1]
        self._pos[:rows] = np.arange(n_past, n_past + rows)
        self._flags[:rows] = 0
        if all_logits:
            self._flags[:k] = 1
        else:
            self._flags[k - 1] = 1
        if pad and pad_logits:
            self._flags[k] = 1
        batch = llm._batch.batch
        batch.n_tokens = rows
        rc = self._llama_decode(llm._ctx.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        llm.input_ids[n_past: n_past + k] = toks
        llm.n_tokens = n_past + k
        if pad:  # the second row only gave the pass a batch's shape: not kept
            self._seq_rm(self._mem, 0, n_past + k, -1)
        out = (k if all_logits else 1) + (pad and pad_logits)
        key = (self._logits_addr(llm._ctx.ctx), out)
        view = self._views.get(key)
        if view is None:
            if len(self._views) > 64:  # the buffer moved (llama.cpp grew it): old views are stale
                self._views.clear()
            ptr = ctypes.cast(key[0], ctypes.POINTER(ctypes.c_float))
            view = self._views[key] = np.ctypeslib.as_array(ptr, shape=(out, self._n_vocab))
        return view

    def is_eog(self, tok: int) -> bool:
        """Whether ``tok`` ends a generation (cached: llama.cpp's test is a ctypes call)."""
        hit = self._eog.get(tok)
        if hit is None:
            hit = self._eog[tok] = bool(self._is_eog(self.llm._model.vocab, tok))
        return hit

    def _rollback(self, n: int) -> None:
        """Drop the cache after its first ``n`` tokens (rejected draft tokens)."""
        if self.llm.n_tokens > n:
            self.llm.n_tokens = n
            self.llm._ctx.kv_cache_seq_rm(0, n, -1)
