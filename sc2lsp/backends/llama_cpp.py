"""llama.cpp backend through llama-cpp-python: the only module in sc2lsp that imports llama_cpp.

The FIM prompt is always a string built by ``sc2lsp.core.prompt`` and tokenized with special
tokens recognised (llama-cpp-python's own ``suffix=`` FIM path uses wrong token ids).

KV reuse: a request evaluates only the tokens after the longest common token prefix of the KV
cache. Before a request would throw away a long stretch of the cache (the user switched files or
moved far away), the state is saved in a small LRU of states (``state_cache_mb``); a later request
whose prompt shares a longer prefix with a saved state than with the live cache loads it. This is
what ``LlamaRAMCache`` does inside ``create_completion``, done here because generation is driven
token by token (so it can be stopped between tokens).

Prompts are evaluated in chunks of ``eval_chunk`` tokens so that a superseded request or a prompt
time cap stops evaluation within one chunk; what was evaluated stays in the cache.

Token healing (``heal_bytes``): the last token(s) of the prompt, when they lie in its last
``heal_bytes`` bytes (the text before the cursor) and some vocabulary token extends them, are
not evaluated; the first generated token(s) are chosen greedily among the tokens that start with
the removed text (or spell a prefix of it), and the removed text is stripped from the output
(``sc2lsp.core.healing`` decides; the vocabulary's pieces are read once per model).

Not thread-safe: one thread owns a backend (``sc2lsp.backends.worker``).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..core.healing import Heal, PieceTable, advance, plan_heal
from ..errors import UserError
from .base import Generation, Timings

# llama-cpp-python's CPU backend is built with OpenMP; libgomp's default active wait spins after
# every parallel region, and on a busy machine (an editor, a build, other models) every decode
# call of more than one token then cost ~1.3 s of CPU even for the 7 MB embedded model (measured:
# 3 prompt tokens in one call 4,128 ms vs 3 ms as three one-token calls; with a passive wait
# 10-20 ms). libgomp reads this when llama.cpp's library is loaded, i.e. at ``import llama_cpp``.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: below this size a model is latency-bound, not compute-bound: with the passive wait policy each of
#: its many small operations pays a thread wake-up, so a second thread makes decoding slower (the
#: 7 MB sc2-tiny: 64 tokens in 51 ms on one thread, 479 ms on two, same machine, same prompt)
SMALL_MODEL_BYTES = 200 * 1024 * 1024


def auto_threads(model_path) -> int:
    """The thread count for ``n_threads = 0``: 1 for a small model file, every core otherwise."""
    try:
        small = os.path.getsize(model_path) < SMALL_MODEL_BYTES
    except OSError:
        small = False
    return 1 if small else (os.cpu_count() or 1)


@dataclass
class LlamaSettings:
    n_ctx: int = 2048
    n_threads: int = 0  #: 0 = automatic: one thread for a model file under SMALL_MODEL_BYTES, else every core
    n_gpu_layers: int = 0  #: -1 = all layers on the GPU (needs a CUDA/Metal build of llama-cpp-python)
    n_batch: int = 512
    seed: int = 0
    eval_chunk: int = 64  #: prompt tokens per decode call; a cancel or time cap acts between chunks
    state_cache_mb: int = 128  #: RAM for saved KV states (0 = none)
    save_min_tokens: int = 64  #: a cached stretch at least this long is saved before it is dropped
    #: let llama.cpp repack quantized weights for its CPU kernels (a second copy of the weights
    #: in RAM next to the memory-mapped file; off by default, see docs/server.md)
    repack: bool = False
    #: a LoRA adapter GGUF applied on top of the model (``finetune export --adapter``); llama.cpp
    #: then reads the weights into RAM instead of memory-mapping them
    lora_path: str | None = None
    lora_scale: float = 1.0  #: the adapter's scale (1.0 = as trained)


#: llama_token_attr bits of tokens that are never part of a prompt's text (UNKNOWN, CONTROL,
#: USER_DEFINED would be text, so it stays)
_SPECIAL_ATTRS = 1 << 0 | 1 << 3


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    # compare in blocks first: prompts share long prefixes
    step = 256
    while i + step <= n and a[i:i + step] == b[i:i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


class StateCache:
    """Saved llama states keyed by their token sequence; least recently used dropped first."""

    def __init__(self, capacity_bytes: int):
        self.capacity = capacity_bytes
        self._items: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._sizes: dict[tuple[int, ...], int] = {}
        self.saves = self.loads = 0

    @property
    def nbytes(self) -> int:
        return sum(self._sizes.values())

    def __len__(self) -> int:
        return len(self._items)

    def best(self, tokens: Sequence[int]) -> tuple[tuple[int, ...] | None, int]:
        """The saved key sharing the longest prefix with ``tokens``, and that length."""
        best_key, best_n = None, 0
        for key in self._items:
            n = _common_prefix(key, tokens)
            if n > best_n:
                best_key, best_n = key, n
        return best_key, best_n

    def covers(self, tokens: Sequence[int]) -> bool:
        """Whether some saved state already holds all of ``tokens`` (no need to save again)."""
        return any(len(k) >= len(tokens) and _common_prefix(k, tokens) == len(tokens) for k in self._items)

    def put(self, key: tuple[int, ...], state: object, size: int) -> None:
        if size > self.capacity:
            return
        # a saved state that is a prefix of the new one is redundant
        for k in [k for k in self._items if len(k) <= len(key) and key[: len(k)] == k]:
            self._drop(k)
        self._items[key] = state
        self._sizes[key] = size
        while self.nbytes > self.capacity:
            self._drop(next(iter(self._items)))
        self.saves += 1

    def get(self, key: tuple[int, ...]) -> object:
        self._items.move_to_end(key)
        self.loads += 1
        return self._items[key]

    def _drop(self, key) -> None:
        del self._items[key]
        del self._sizes[key]


class LlamaCppBackend:
    """A ``backends.base.Backend`` for a GGUF run in process by llama.cpp, with every optional
    capability (exact token counts, token healing, KV reuse and saved states)."""

    def __init__(self, model_path: str | Path, settings: LlamaSettings | None = None):
        from ..models.gguf_check import check_gguf

        self.settings = s = settings or LlamaSettings()
        self.model_path = Path(model_path)
        check_gguf(self.model_path)
        if s.lora_path:
            check_gguf(s.lora_path, adapter=True, label=f"LoRA adapter {s.lora_path}",
                       hint="export it again (`python -m finetune export RUN --adapter`)")
        import llama_cpp
        import llama_cpp.llama_cpp as low

        default_params = low.llama_model_default_params
        if not s.repack:  # Llama() has no argument for it: adjust the defaults it starts from

            def no_repack():
                params = default_params()
                params.use_extra_bufts = False
                return params

            low.llama_model_default_params = no_repack
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=s.n_ctx,
                n_threads=s.n_threads or auto_threads(self.model_path),
                n_gpu_layers=s.n_gpu_layers,
                n_batch=s.n_batch,
                seed=s.seed,
                verbose=False,
                **({"lora_path": str(s.lora_path), "lora_scale": s.lora_scale} if s.lora_path else {}),
            )
        except Exception as e:  # llama.cpp reports load failures as a bare ValueError/RuntimeError
            what = f"{self.model_path} with the LoRA adapter {s.lora_path}" if s.lora_path else self.model_path
            raise UserError(f"llama.cpp could not load {what}: {e}") from None
        finally:
            low.llama_model_default_params = default_params
        self.name = self.model_path.name + (f"+{Path(s.lora_path).name}" if s.lora_path else "")
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self.n_ctx = self.llm.n_ctx()
        self.states = StateCache(s.state_cache_mb * 1024 * 1024)
        self._pieces: PieceTable | None = None
        self._order = None  # numpy array of PieceTable.order
        self.device = "cpu" if s.n_gpu_layers == 0 else f"gpu ({'all' if s.n_gpu_layers < 0 else s.n_gpu_layers} layers)"

    notify = None  #: nothing to report after loading: a local model has no endpoint to lose

    def describe(self) -> None:
        return None

    def close(self) -> None:
        """Free the model and its context now (not whenever the garbage collector runs)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.close()

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(ids)).decode("utf-8", errors="replace")

    @property
    def token_counter(self) -> Callable[[str], int]:
        return lambda text: len(self.tokenize(text))

    @property
    def cached_tokens(self) -> int:
        return self.llm.n_tokens

    # ------------------------------------------------------------------ token healing

    @property
    def pieces(self) -> PieceTable:
        """The vocabulary's token pieces (built on first use: one call per token)."""
        if self._pieces is None:
            import numpy as np

            import ctypes

            import llama_cpp

            model = self.llm._model
            vocab = model.vocab
            buf = ctypes.create_string_buffer(256)
            pieces = []
            for i in range(self.llm.n_vocab()):
                if model.token_get_attr(i) & _SPECIAL_ATTRS:
                    pieces.append(b"")  # control/special tokens never complete a prompt's text
                    continue
                n = llama_cpp.llama_token_to_piece(vocab, i, buf, len(buf), 0, False)
                if n < 0:  # longer than the buffer: -n bytes needed
                    buf = ctypes.create_string_buffer(-n)
                    n = llama_cpp.llama_token_to_piece(vocab, i, buf, len(buf), 0, False)
                pieces.append(buf.raw[:max(n, 0)])
            self._pieces = PieceTable(pieces)
            self._order = np.asarray(self._pieces.order, dtype=np.int64)
        return self._pieces

    def plan_heal(self, tokens: Sequence[int], heal_bytes: int) -> Heal:
        if heal_bytes <= 0 or not tokens:
            return Heal(len(tokens))
        return plan_heal(tokens, self.pieces, heal_bytes)

    def _constrained_token(self, removed: bytes) -> int:
        """Greedy choice among the tokens that fit ``removed`` (start with it or spell a prefix)."""
        import numpy as np

        table = self.pieces
        (lo, hi), extra = table.allowed(removed)
        ids = self._order[lo:hi]
        if extra:
            ids = np.concatenate([ids, np.asarray(extra, dtype=np.int64)])
        if not len(ids):  # cannot happen with a byte-level vocabulary (every byte is a token)
            return self.llm.sample(temp=0.0)
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self.llm.n_vocab(),))
        return int(ids[int(np.argmax(logits[ids]))])

    # ------------------------------------------------------------------ prompt evaluation

    def _save_state(self) -> None:
        """Copy the live KV cache of sequence 0 (and its tokens) into the state cache."""
        import ctypes

        import llama_cpp

        llm = self.llm
        key = tuple(llm._input_ids[: llm.n_tokens].tolist())
        if not key or self.states.covers(key):
            return
        ctx = llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        if n:
            self.states.put(key, (buf, n), n + 4 * len(key))

    def _load_state(self, key: tuple[int, ...]) -> bool:
        import llama_cpp

        llm = self.llm
        buf, n = self.states.get(key)
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, n, 0) != n:
            llm.n_tokens = 0
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            return False
        llm.input_ids[: len(key)] = key
        llm.n_tokens = len(key)
        return True

    def _restore_best(self, tokens: list[int], reuse: int, t: Timings) -> int:
        """Save the live cache if it is about to lose a long stretch; load a better saved state."""
        llm, s = self.llm, self.settings
        if s.state_cache_mb <= 0:
            return reuse
        if llm.n_tokens - reuse >= s.save_min_tokens:
            self._save_state()
        key, n = self.states.best(tokens)
        if key is not None and n > reuse + 1 and self._load_state(key):
            t.state_loads += 1
            reuse = _common_prefix(llm._input_ids[: llm.n_tokens].tolist(), tokens)
        return reuse

    def _evaluate(
        self,
        tokens: list[int],
        t: Timings,
        *,
        keep_last: bool,
        should_stop: Callable[[], bool] | None,
        deadline: float | None,
    ) -> str | None:
        """Bring the KV cache to ``tokens`` (with ``keep_last``, the last token is evaluated again).

        Returns None when done, else "cancelled" or "prompt_time" (what was evaluated is kept).
        """
        llm = self.llm
        if len(tokens) >= self.n_ctx:
            raise UserError(f"prompt of {len(tokens)} tokens does not fit n_ctx={self.n_ctx}")
        reuse = _common_prefix(llm._input_ids[: llm.n_tokens].tolist(), tokens)
        reuse = self._restore_best(tokens, reuse, t)
        if keep_last:
            reuse = min(reuse, len(tokens) - 1)  # the last prompt token must be evaluated to get logits
        else:
            reuse = min(reuse, len(tokens))
        llm.n_tokens = reuse
        llm._ctx.kv_cache_seq_rm(-1, reuse, -1)
        t.prompt_tokens = len(tokens)
        t.prompt_tokens_reused = reuse
        chunk = max(1, self.settings.eval_chunk)
        i = reuse
        while i < len(tokens):
            if i > reuse:
                if should_stop is not None and should_stop():
                    return "cancelled"
                if deadline is not None and time.perf_counter() > deadline:
                    return "prompt_time"
            llm.eval(tokens[i: i + chunk])
            i += chunk
        return None

    def warm(self, prompt: str, *, should_stop: Callable[[], bool] | None = None) -> Generation:
        """Evaluate ``prompt`` into the KV cache without generating (background warm-up)."""
        t = Timings()
        t0 = time.perf_counter()
        tokens = self.tokenize(prompt)[: self.n_ctx - 1]
        llm = self.llm
        if llm.n_tokens >= len(tokens) and _common_prefix(llm._input_ids[: len(tokens)].tolist(), tokens) == len(tokens):
            # already cached (e.g. by the completion that just ran): keep its generated tail too
            t.prompt_tokens = t.prompt_tokens_reused = len(tokens)
            return Generation(text="", stop_reason="warm", timings=t)
        reason = self._evaluate(tokens, t, keep_last=False, should_stop=should_stop, deadline=None)
        t.prompt_ms = (time.perf_counter() - t0) * 1000
        return Generation(text="", stop_reason=reason or "warm", timings=t)

    # ------------------------------------------------------------------ generation

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        time_limit_s: float | None = None,
        should_stop: Callable[[], bool] | None = None,
        stop: Sequence[str] = (),
        prompt_time_limit_s: float | None = None,
        on_text: Callable[[str], None] | None = None,
        heal_bytes: int = 0,
    ) -> Generation:
        """Greedy generation after ``prompt``; stops on end-of-generation tokens (EOS, ``<file_sep>``).

        ``time_limit_s`` caps generation (measured from the end of the prompt evaluation; the
        first token is always produced), ``prompt_time_limit_s`` caps prompt evaluation (checked
        between chunks; the result is then empty with stop reason ``prompt_time``).
        ``on_text(text_so_far)`` is called after each generated token.
        ``heal_bytes`` > 0 turns on token healing within the prompt's last ``heal_bytes`` bytes:
        the returned text then starts at the end of the prompt as usual, and
        ``timings.healed_tokens`` says how many prompt tokens were regenerated.
        """
        llm = self.llm
        tokens = self.tokenize(prompt)
        if len(tokens) + max_tokens > self.n_ctx:
            raise UserError(f"prompt of {len(tokens)} tokens + {max_tokens} new does not fit n_ctx={self.n_ctx}")
        heal = self.plan_heal(tokens, heal_bytes)
        if heal.keep == 0:  # nothing would be left to condition on
            heal = Heal(len(tokens))
        t = Timings(healed_tokens=len(tokens) - heal.keep)
        tokens, removed = tokens[: heal.keep], heal.removed
        t0 = time.perf_counter()
        p_deadline = None if prompt_time_limit_s is None else t0 + prompt_time_limit_s
        early = self._evaluate(tokens, t, keep_last=True, should_stop=should_stop, deadline=p_deadline)
        t1 = time.perf_counter()
        t.prompt_ms = (t1 - t0) * 1000
        if early is not None:
            return Generation(text="", stop_reason=early, timings=t)
        out: list[int] = []
        reason = "length"
        deadline = None if time_limit_s is None else t1 + time_limit_s
        text = ""
        pending = removed  # healed text not regenerated yet
        heal_steps = 0  # tokens that only regenerated healed text (not counted in max_tokens)
        while len(out) - heal_steps < max_tokens:
            if pending:
                tok = self._constrained_token(pending)
                pending = advance(pending, self.pieces.pieces[tok]) or b""
                heal_steps += bool(pending)
            else:
                tok = llm.sample(temp=0.0)
            if self._is_eog(llm._model.vocab, tok):
                reason = "stop"
                break
            out.append(tok)
            if pending:  # still inside the healed text: nothing new to show or to stop on
                llm.eval([tok])
                continue
            text = self._text(out, removed)
            if any(s in text for s in stop):
                text = text[: min(text.index(s) for s in stop if s in text)]
                reason = "stop"
                break
            if on_text is not None:
                on_text(text)
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

    def _text(self, out: list[int], removed: bytes) -> str:
        """The generated text after the healed bytes (which it starts with, by construction)."""
        if not removed:
            return self.detokenize(out)
        raw = self.llm.detokenize(list(out))
        return raw[len(removed):].decode("utf-8", errors="replace") if raw.startswith(removed) else raw.decode("utf-8", errors="replace")


def vocab_tokenizer(model_path: str | Path) -> Callable[[str], list[int]]:
    """The tokenizer of a GGUF alone (``vocab_only``: no weights loaded), special tokens recognised;
    a remote backend counts prompt tokens with it when the server cannot."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    return lambda text: llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
