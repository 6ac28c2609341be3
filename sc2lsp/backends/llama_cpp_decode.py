"""The llama.cpp backend's model passes (a mixin of ``LlamaCppBackend``): the batch written
through numpy views of llama.cpp's arrays, logits only for the rows needed, read as numpy views
without copies, and the rollback of rejected draft tokens. Uses the backend's ``llm``,
``settings``, ``_pad`` and ``_n_vocab``; runs on the worker thread like the rest of it.
"""

from __future__ import annotations


class DecodeMixin:
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
