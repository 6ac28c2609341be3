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

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..core.healing import Heal, PieceTable, plan_heal
from ..errors import UserError
from .base import Generation, Timings
from .speculative import MAX_MATCH, DraftPolicy, History, PromptLookup, Run
from .llama_cpp_decode import DecodeMixin
from .llama_cpp_states import SavedStatesMixin
from .state_store import StateCache, _common_prefix  # noqa: F401 - StateCache is part of this module's API

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

log = logging.getLogger(__name__)

#: automatic speculation (a model file of SMALL_MODEL_BYTES or more) stays on only where a padded
#: lone-token pass, the 2-row minimum of an exact speculative pass, costs at most this many one-row
#: passes on this machine (measured at load: ``LlamaCppBackend.pad_cost``). The 3B-shaped Q4_K_M on
#: 2 threads here: 1.57 (compute-bound rows), where drafting gained 1.27-1.32x over padded passes,
#: so speculation would lose ~0.8x against one-row decoding; a bandwidth-bound machine pays ~1.05
PAD_PAYS = 1.2


def repack_crashes() -> bool:
    """Whether llama.cpp's extra weight buffers (repacking) crash on this CPU: with llama-cpp-python
    0.3.36 on a CPU with AMX (Sapphire Rapids and later) the first ``llama_decode`` of sc2-tiny's
    Q8_0 weights ends in a segmentation fault; such a CPU never repacks."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


@contextmanager
def repacking(on: bool):
    """Models loaded inside repack their weights only if ``on``: ``Llama()`` has no argument for it,
    so the defaults it starts from (``llama_model_default_params``) are adjusted meanwhile."""
    import llama_cpp.llama_cpp as low

    default_params = low.llama_model_default_params

    def no_repack():
        params = default_params()
        params.use_extra_bufts = False
        return params

    if not on:
        low.llama_model_default_params = no_repack
    try:
        yield
    finally:
        low.llama_model_default_params = default_params


def _small_model(model_path) -> bool:
    try:
        return os.path.getsize(model_path) < SMALL_MODEL_BYTES
    except OSError:
        return False


def auto_threads(model_path) -> int:
    """The thread count for ``n_threads = 0``: 1 for a small model file, every core otherwise."""
    return 1 if _small_model(model_path) else (os.cpu_count() or 1)


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
    #: the disk tier of saved states (kept across restarts; None = none): warmed prompts and the
    #: states the RAM cache saves are written there in the background, bounded by ``state_disk_mb``
    state_dir: str | None = None
    state_disk_mb: int = 512
    #: let llama.cpp repack quantized weights for its CPU kernels (a second copy of the weights
    #: in RAM next to the memory-mapped file; off by default, see docs/server.md)
    repack: bool = False
    #: a LoRA adapter GGUF applied on top of the model (``finetune export --adapter``); llama.cpp
    #: then reads the weights into RAM instead of memory-mapping them
    lora_path: str | None = None
    lora_scale: float = 1.0  #: the adapter's scale (1.0 = as trained)
    #: speculative decoding from the prompt: tokens drafted by n-gram lookup in the prompt (and in
    #: earlier requests' prompts) are checked in one batched pass (identical greedy output;
    #: drafting stops where it would not pay). None = automatic: on for a model file of
    #: SMALL_MODEL_BYTES or more where a padded lone-token pass costs at most PAD_PAYS one-row
    #: passes on this machine, measured at load (bandwidth-bound: a pass over several tokens costs
    #: little more than one), off below or where it costs more
    speculative: bool | None = None
    #: flash attention. None = automatic: on for large models, off for small ones (its CPU kernel
    #: costs sc2-tiny ~1.7x per one-token pass at an 800-token cache and 0.64 of a pass per extra
    #: row, against 0.2 without it; docs/server.md "Speculative decoding")
    flash_attn: bool | None = None
    #: every generation pass computed as a batch (2+ rows; a lone token gets a second row that is
    #: thrown away or holds a drafted token): a row then rounds the same whatever the pass's size,
    #: so drafted tokens are checked exactly as a lone pass would compute them. None = automatic:
    #: when speculating, where that needs it (without flash attention, whose kernel is row-stable
    #: on one thread, and with flash attention on several threads: a one-row pass splits the
    #: cache); without speculation passes keep one row
    stable_rows: bool | None = None
    draft_max: int = 8  #: at most this many drafted tokens per pass


#: llama_token_attr bits of tokens that are never part of a prompt's text (UNKNOWN, CONTROL,
#: USER_DEFINED would be text, so it stays)
_SPECIAL_ATTRS = 1 << 0 | 1 << 3


class LlamaCppBackend(DecodeMixin, SavedStatesMixin):
    """A ``backends.base.Backend`` for a GGUF run in process by llama.cpp, with every optional
    capability (exact token counts, token healing, KV reuse and saved states)."""

    def __init__(self, model_path: str | Path, settings: LlamaSettings | None = None):
        from ..models.gguf_check import check_gguf

        self.settings = s = settings or LlamaSettings()
        self.model_path = Path(model_path)
        info = check_gguf(self.model_path)
        #: what the user should hear about this load (the engine shows them once it is ready)
        self.warnings: list[str] = []
        n_ctx = s.n_ctx
        trained = info.context_length
        if trained and n_ctx > trained:  # past it the model degrades, and the KV cache grows with it
            self.warnings.append(f"contextLength {n_ctx} is more than {self.model_path.name} was trained on "
                                 f"({trained} tokens); using {trained}")
            n_ctx = trained
        if s.lora_path:
            check_gguf(s.lora_path, adapter=True, label=f"LoRA adapter {s.lora_path}",
                       hint="export it again (`python -m finetune export RUN --adapter`)")
        import llama_cpp

        #: weights repacked for the CPU kernels (``repackWeights``), unless that crashes here
        self.repack = s.repack and not repack_crashes()
        threads = s.n_threads or auto_threads(self.model_path)
        large = not _small_model(self.model_path)
        self.speculative = large if s.speculative is None else s.speculative
        self.flash_attn = large if s.flash_attn is None else s.flash_attn
        try:
            with repacking(self.repack):
                self.llm = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=n_ctx,
                    n_threads=threads,
                    # batches (prompt chunks, speculative checks) on as many threads as single tokens:
                    # llama-cpp-python's default (every core) made a 2-token pass of sc2-tiny ~10x slower
                    n_threads_batch=threads,
                    flash_attn=self.flash_attn,
                    n_gpu_layers=s.n_gpu_layers,
                    n_batch=s.n_batch,
                    seed=s.seed,
                    verbose=False,
                    **({"lora_path": str(s.lora_path), "lora_scale": s.lora_scale} if s.lora_path else {}),
                )
        except Exception as e:  # llama.cpp reports load failures as a bare ValueError/RuntimeError
            what = f"{self.model_path} with the LoRA adapter {s.lora_path}" if s.lora_path else self.model_path
            raise UserError(f"llama.cpp could not load {what}: {e}") from None
        self.name = self.model_path.name + (f"+{Path(s.lora_path).name}" if s.lora_path else "")
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self.n_ctx = self.llm.n_ctx()
        self._pieces: PieceTable | None = None
        self._order = None  # numpy array of PieceTable.order
        self._n_vocab = self.llm.n_vocab()
        self.history = History()
        self._batch_views()
        self._rows(s, threads)
        # one pass now: the first request after a start must not pay for faulting the weights in
        # and first-time allocations (sc2-tiny's first 8 tokens after a restart: 6.7 ms each, 0.75 later)
        self._decode(self.tokenize("\n"), all_logits=False)
        self._rollback(0)
        #: automatic speculation on a large model: a padded lone-token pass's cost in one-row passes,
        #: measured here; past PAD_PAYS the rows cost compute on this machine and speculation is off
        self.pad_cost: float | None = None
        if s.speculative is None and self.speculative:
            self.pad_cost = self._pad_cost()
            if self.pad_cost > PAD_PAYS:
                self.speculative = False
                self._rows(s, threads)
            log.info("%s: speculative decoding %s (a 2-row pass costs %.2f one-row passes here; on up to %.2f)",
                     self.name, "on" if self.speculative else "off", self.pad_cost, PAD_PAYS)
        self._states(s, llama_cpp)
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

    def _constrained_token(self, removed: bytes, logits) -> int:
        """Greedy choice among the tokens that fit ``removed`` (start with it or spell a prefix)."""
        import numpy as np

        table = self.pieces
        (lo, hi), extra = table.allowed(removed)
        ids = self._order[lo:hi]
        if extra:
            ids = np.concatenate([ids, np.asarray(extra, dtype=np.int64)])
        if not len(ids):  # cannot happen with a byte-level vocabulary (every byte is a token)
            return int(np.argmax(logits))
        return int(ids[int(np.argmax(logits[ids]))])

    # ------------------------------------------------------------------ prompt evaluation

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
            self._decode(tokens[i: i + chunk], all_logits=False)
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
            self._persist()
            return Generation(text="", stop_reason="warm", timings=t)
        reason = self._evaluate(tokens, t, keep_last=False, should_stop=should_stop, deadline=None)
        if self.speculative:
            self.history.add(tokens)
        t.prompt_ms = (time.perf_counter() - t0) * 1000
        if reason is None:  # an idle moment: keep this prompt for the next server start too
            self._persist()
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
        on_text: Callable[[str], bool | None] | None = None,
        heal_bytes: int = 0,
    ) -> Generation:
        """Greedy generation after ``prompt``; stops on end-of-generation tokens (EOS, ``<file_sep>``).

        ``time_limit_s`` caps generation (measured from the end of the prompt evaluation; the
        first token is always produced), ``prompt_time_limit_s`` caps prompt evaluation (checked
        between chunks; the result is then empty with stop reason ``prompt_time``).
        ``on_text(text_so_far)`` is called after each generated token (true: stop there, "done").
        ``heal_bytes`` > 0 turns on token healing within the prompt's last ``heal_bytes`` bytes:
        the returned text then starts at the end of the prompt as usual, and
        ``timings.healed_tokens`` says how many prompt tokens were regenerated.
        With ``settings.speculative`` the output is the same; ``should_stop`` and the time cap
        are then checked between model passes (a pass may yield several tokens).
        """
        tokens = self.tokenize(prompt)
        if len(tokens) + max_tokens > self.n_ctx:
            raise UserError(f"prompt of {len(tokens)} tokens + {max_tokens} new does not fit n_ctx={self.n_ctx}")
        heal = self.plan_heal(tokens, heal_bytes)
        if heal.keep == 0:  # nothing would be left to condition on
            heal = Heal(len(tokens))
        t = Timings(healed_tokens=len(tokens) - heal.keep)
        tokens = tokens[: heal.keep]
        t0 = time.perf_counter()
        p_deadline = None if prompt_time_limit_s is None else t0 + prompt_time_limit_s
        early = self._evaluate(tokens, t, keep_last=True, should_stop=should_stop, deadline=p_deadline)
        t1 = time.perf_counter()
        t.prompt_ms = (t1 - t0) * 1000
        if early is not None:
            return Generation(text="", stop_reason=early, timings=t)
        run = Run(self, heal.removed, max_tokens, stop, on_text)
        lookup = PromptLookup(tokens, max_tokens + t.healed_tokens + 1, self.history) if self.speculative else None
        reason = self._loop(run, lookup, t, should_stop, None if time_limit_s is None else t1 + time_limit_s)
        if lookup is not None:
            self.history.add(tokens + run.out)
        t.generated_tokens = len(run.out)
        t.generate_ms = (time.perf_counter() - t1) * 1000
        return Generation(text=run.text if run.out else "", stop_reason=reason, timings=t)

    def _loop(self, run: Run, lookup: PromptLookup | None, t: Timings,
              should_stop: Callable[[], bool] | None, deadline: float | None) -> str:
        """The token loop: one model pass per iteration, over the model's own next token and, with
        ``lookup``, a draft from the prompt; the longest agreeing prefix of the draft is kept."""
        import numpy as np

        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self._n_vocab,))
        while run.room():
            if run.pending:  # token healing: constrained choices, one token per pass
                tok = self._constrained_token(run.pending, logits)
                if run.heal(tok):
                    if self.is_eog(tok):
                        return "stop"
                    run.add(tok)
                    if lookup is not None:
                        lookup.push(tok)
                    logits = self._pass(t, [tok])[0]
                    continue
            else:
                tok = int(np.argmax(logits))
            reason = run.emit(tok)
            if reason is not None:
                return reason
            if lookup is not None:
                lookup.push(tok)
            if should_stop is not None and should_stop():
                return "cancelled"
            if deadline is not None and time.perf_counter() > deadline:
                return "time"
            draft, match = [], 0
            if lookup is not None:
                least = self.policy.min_match(run.room())
                if least <= MAX_MATCH:  # else no match would be worth drafting: skip the lookup
                    draft, match = lookup.lookup(self.settings.draft_max, least)
                    draft = draft[: self.policy.length(match, run.room())]
            rows = self._pass(t, [tok] + draft)
            n_ok = 0
            while n_ok < len(draft) and int(np.argmax(rows[n_ok])) == draft[n_ok]:
                n_ok += 1
            if lookup is not None:
                self.policy.passed(len(draft) + 1, n_ok + 1)
            if draft:
                t.drafted += len(draft)
                t.accepted += n_ok
                self.policy.record(match, len(draft), n_ok)
                self._rollback(self.llm.n_tokens - (len(draft) - n_ok))
            for tok in draft[:n_ok]:  # what greedy decoding gives at these positions
                reason = "length" if not run.room() else run.emit(tok)
                if reason is not None:
                    return reason
                lookup.push(tok)
            logits = rows[n_ok]
        return "length"

    def _pass(self, t: Timings, toks: list[int]):
        clock = time.thread_time if self._thread_clock else time.perf_counter
        t0 = clock()
        rows = self._decode(toks, all_logits=len(toks) > 1, pad_logits=self._same_shape)
        if self.speculative:
            self.policy.timed(max(len(toks), self.policy.base_rows), (clock() - t0) * 1000)
        t.passes += 1
        return rows


def vocab_tokenizer(model_path: str | Path) -> Callable[[str], list[int]]:
    """The tokenizer of a GGUF alone (``vocab_only``: no weights loaded), special tokens recognised;
    a remote backend counts prompt tokens with it when the model's GGUF is on this machine."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    return lambda text: llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
