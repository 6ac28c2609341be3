"""Saving and restoring the llama.cpp backend's KV cache (sequence 0) through the state stores of
``state_store.py``: the RAM LRU and the disk tier. A mixin of ``LlamaCppBackend`` (it uses its
``llm``, ``settings``, ``states`` and ``disk``, made by ``_states``); runs on the worker thread like
the rest of it.
"""

from __future__ import annotations

from pathlib import Path

from .base import Timings
from .state_store import DiskStates, StateCache, _common_prefix, file_identity


class SavedStatesMixin:
    def _states(self, s, llama_cpp) -> None:
        """The saved-state cache, and its disk tier (valid for the same model, kernels and row
        shapes only)."""
        self.states = StateCache(s.state_cache_mb * 1024 * 1024)
        self.disk: DiskStates | None = None
        if s.state_dir and s.state_disk_mb > 0 and s.state_cache_mb > 0:
            identity = {"format": 1, "model": file_identity(self.model_path), "lora": file_identity(s.lora_path),
                        "lora_scale": s.lora_scale if s.lora_path else None, "n_ctx": self.n_ctx,
                        "flash_attn": self.flash_attn, "stable_rows": self._pad,
                        "llama_cpp": getattr(llama_cpp, "__version__", "?")}
            self.disk = DiskStates(Path(s.state_dir), identity, s.state_disk_mb * 1024 * 1024)
            self.disk.prefetch(s.state_cache_mb * 1024 * 1024 // 2)

    def _copy_state(self):
        """The live KV cache of sequence 0 as bytes: (its tokens, ctypes buffer, length)."""
        import ctypes

        import llama_cpp

        llm = self.llm
        key = tuple(llm._input_ids[: llm.n_tokens].tolist())
        ctx = llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        return key, buf, llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)

    def _save_state(self) -> None:
        """Copy the live KV cache of sequence 0 (and its tokens) into the state cache (and to disk)."""
        llm = self.llm
        if not llm.n_tokens or self.states.covers(llm._input_ids[: llm.n_tokens].tolist()):
            return
        key, buf, n = self._copy_state()
        if n:
            self.states.put(key, (buf, n), n + 4 * len(key))
            if self.disk is not None:
                self.disk.save(key, buf, n)

    def _persist(self) -> None:
        """Keep the live cache (a warmed prompt, in an idle moment) in the RAM cache and queue it for
        the disk tier, unless saved states already hold it: a later request that displaces it
        then has nothing to copy first (``_restore_best`` saves only what no state covers)."""
        llm, s = self.llm, self.settings
        if llm.n_tokens < s.save_min_tokens:
            return
        tokens = llm._input_ids[: llm.n_tokens].tolist()
        ram = s.state_cache_mb > 0 and not self.states.covers(tokens)
        disk = self.disk is not None and not self.disk.covers(tokens)
        if not (ram or disk):
            return
        key, buf, n = self._copy_state()
        if n:
            if ram:
                self.states.put(key, (buf, n), n + 4 * len(key))
            if disk:
                self.disk.save(key, buf, n)

    def _load_state(self, key: tuple[int, ...], data=None) -> bool:
        import llama_cpp

        llm = self.llm
        buf, n = data if data is not None else self.states.get(key)
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, n, 0) != n:
            llm.n_tokens = 0
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            return False
        llm.input_ids[: len(key)] = key
        llm.n_tokens = len(key)
        return True

    def _restore_best(self, tokens: list[int], reuse: int, t: Timings) -> int:
        """Save the live cache if it is about to lose a long stretch; load a better saved state
        (from RAM, or from the disk tier when that holds a longer match)."""
        llm, s = self.llm, self.settings
        if s.state_cache_mb <= 0:
            return reuse
        if llm.n_tokens - reuse >= s.save_min_tokens:
            self._save_state()
        key, n = self.states.best(tokens)
        dkey, dn = self.disk.best(tokens) if self.disk is not None else (None, 0)
        loaded = False
        if dkey is not None and dn > max(n, reuse + 1):
            data = self.disk.load(dkey)
            if data is not None and self._load_state(dkey, data):
                self.states.put(dkey, data, data[1] + 4 * len(dkey))
                loaded = True
                t.state_loads += 1
        if not loaded and key is not None and n > reuse + 1 and self._load_state(key):
            loaded = True
            t.state_loads += 1
        if loaded:
            reuse = _common_prefix(llm._input_ids[: llm.n_tokens].tolist(), tokens)
        return reuse
