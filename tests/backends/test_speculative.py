"""Speculative decoding from the prompt: drafting, and greedy output identical to one token per pass.

The exactness test runs sc2-tiny through real llama.cpp at hundreds of positions of real files
(this repository's sources and standard library modules), with a drafting policy that drafts at
every step (so rejections, partial acceptances and KV rollbacks all happen), with and without
token healing, with single-line stops, and checks the text and stop reason against the same
backend settings without speculation (flash attention off, every pass computed as a batch).
"""

from __future__ import annotations

import inspect
import json
import random
import textwrap
from pathlib import Path

import pytest

from sc2lsp.backends.llama_cpp import LlamaCppBackend, LlamaSettings
from sc2lsp.backends.speculative import LONGEST_MATCH, DraftPolicy, History, PromptLookup
from sc2lsp.core.prompt import infill_prompt
from sc2lsp.core.tokens import STOP_TOKENS

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"


def test_lookup_finds_the_longest_latest_match():
    lk = PromptLookup([5, 1, 2, 3, 9, 9, 1, 2, 4, 4, 7], capacity=8)
    lk.push(1)
    lk.push(2)
    # "1 2" occurs twice; the latest (followed by 4 4 7 1 2) wins at equal length
    assert lk.lookup(3) == ([4, 4, 7], 2)
    lk.push(3)  # now "1 2 3" matches the first occurrence, longer
    assert lk.lookup(4) == ([9, 9, 1, 2], 3)
    assert PromptLookup([1, 2, 3], capacity=2).lookup(4) == ([], 0)  # 3 never occurred before
    lk = PromptLookup(list(range(20)) + [7, 8, 9, 50, 51], capacity=4)
    assert lk.lookup(3) == ([], 0)  # 51 never occurred before
    lk.push(7)  # "50 51 7": a 1-token match at 7 (followed by 8 9 10 and 8 9 50)
    assert lk.lookup(3) == ([8, 9, 50], 1)


def test_lookup_drafts_from_earlier_requests():
    block = list(range(100, 140))
    hist = History()
    hist.add([1, 2] + block + [8])  # an earlier prompt held the block
    hist.add([1, 2, 9])  # then it was deleted: this sequence lacks much of the other, both are kept
    prompt = [1, 2, 9, 5, 100, 101]
    assert PromptLookup(prompt, capacity=4).lookup(4) == ([], 0)  # "101" occurs nowhere before
    assert PromptLookup(prompt, capacity=4, history=hist).lookup(4) == ([102, 103, 104, 105], 2)
    hist.add([1, 2, 9, 10])  # typing along: replaces its predecessor, keeps the block's sequence
    assert [len(s) for s in hist.seqs] == [43, 4]


def _reference_lookup(seq, hist_seqs, max_len, min_match):
    """The lookup's definition, by brute force: the longest (up to LONGEST_MATCH) earlier match of
    the sequence's end, the latest of those; an earlier request's sequence only with a longer one."""
    def best(hay, end):  # (match length, index after the match) over matches ending before ``end``
        found = (0, -1)
        for j in range(end):
            m = 0
            while m < min(LONGEST_MATCH, len(seq)) and j - m >= 0 and hay[j - m] == seq[-1 - m]:
                m += 1
            if m and m >= found[0]:
                found = (m, j + 1)
        return found
    m, start = best(seq, len(seq) - 1)
    out = seq[start: start + max_len] if m else []
    hay = [t for s in hist_seqs for t in (*s, -1)]
    if hist_seqs and m < LONGEST_MATCH:
        hm, hstart = best(hay, len(hay) - 1)
        if hm > m and hm >= min_match:
            m, out = hm, hay[hstart: hstart + max_len]
            out = out[: out.index(-1)] if -1 in out else out
    return (out, m) if m >= min_match and m else ([], 0)


def test_lookup_agrees_with_its_definition_on_random_sequences():
    # few distinct tokens (many matches of every length), ids whose 4-byte encodings overlap
    # across token boundaries (0x100, 0x10000, ...): a match must start at a token, not inside one
    rng = random.Random(7)
    alphabet = [0, 1, 2, 256, 257, 513, 65536, 65537, 1 << 24, (1 << 24) + 1]
    checked = 0
    for _ in range(1500):
        k = rng.randrange(2, len(alphabet) + 1)
        prompt = [rng.choice(alphabet[:k]) for _ in range(rng.randrange(1, 50))]
        seqs = [[rng.choice(alphabet[:k]) for _ in range(rng.randrange(0, 40))] for _ in range(rng.randrange(0, 3))]
        hist = History(entries=3)
        for s in seqs:
            hist.add(s)
        kept = [s.tolist() for s in hist.seqs]
        lk = PromptLookup(prompt, capacity=20, history=hist if seqs else None)
        seq = list(prompt)
        for _ in range(rng.randrange(0, 15)):
            tok = rng.choice(alphabet[:k])
            lk.push(tok)
            seq.append(tok)
        for min_match in (1, 2, 3, 5):
            for max_len in (1, 3, 8):
                assert lk.lookup(max_len, min_match) == _reference_lookup(seq, kept, max_len, min_match), \
                    (prompt, kept, seq, max_len, min_match)
                checked += 1
    assert checked == 1500 * 12


def test_policy_drafts_only_where_it_pays():
    cheap = DraftPolicy(max_draft=8, extra_cost=0.05, adaptive=False)
    dear = DraftPolicy(max_draft=8, extra_cost=0.6, adaptive=False)
    assert cheap.length(4, room=100) > dear.length(4, room=100)
    assert dear.length(1, room=100) == 0  # a one-token match is rarely right: not worth 60% of a pass
    assert cheap.length(4, room=2) == 2 and cheap.length(0, room=10) == 0
    p = DraftPolicy(max_draft=8, extra_cost=0.3)
    for _ in range(200):
        p.record(2, drafted=4, accepted=0)
    assert p.length(2, room=10) == 0  # drafts after 2-token matches kept failing: stop drafting them
    for _ in range(200):
        p.record(3, drafted=4, accepted=4)
    assert p.length(3, room=10) == 8
    free = DraftPolicy(max_draft=8, extra_cost=0.6, adaptive=False, base_rows=2)
    assert free.length(1, room=100) == 1  # a pass has a second row anyway: a one-token guess is free


def _positions(n: int) -> list[tuple[str, str, str]]:
    """(path, prefix, suffix) at random places of real files."""
    import argparse
    import json.decoder
    import string

    sources = [(p.name, p.read_text()) for p in (ROOT / "sc2lsp" / "engine.py", ROOT / "sc2lsp" / "config.py",
                                                  ROOT / "sc2lsp" / "core" / "budget.py")]
    sources += [(Path(inspect.getfile(m)).name, inspect.getsource(m)) for m in (argparse, json.decoder, string, textwrap)]
    rng = random.Random(15)
    out = []
    for i in range(n):
        name, src = sources[i % len(sources)]
        off = rng.randrange(200, len(src) - 200)
        if i % 3 == 0:  # at a line start, as after Enter
            off = src.rfind("\n", 0, off) + 1
        out.append((name, src[max(0, off - 1200): off], src[off: off + 600]))
    return out


@pytest.mark.slow
def test_speculative_greedy_output_is_identical_at_hundreds_of_positions():
    plain = LlamaCppBackend(TINY, LlamaSettings(speculative=False, stable_rows=True))
    spec = LlamaCppBackend(TINY, LlamaSettings(speculative=True))
    assert not spec.flash_attn and spec._pad
    spec.policy = DraftPolicy(max_draft=8, extra_cost=1e-3, adaptive=False, base_rows=2)  # draft at every step
    drafted = accepted = passes = tokens = 0
    mismatches = []
    for i, (name, prefix, suffix) in enumerate(_positions(240)):
        prompt = infill_prompt(prefix, suffix, path=name)
        kw = dict(max_tokens=40, stop=STOP_TOKENS + (("\n",) if i % 4 == 1 else ()),
                  heal_bytes=len(prefix.encode()) if i % 2 else 0,
                  on_text=(lambda text: text.count("\n") >= 2) if i % 4 == 2 else None)  # "done" at a line
        a = plain.generate(prompt, **kw)
        b = spec.generate(prompt, **kw)
        if (a.text, a.stop_reason) != (b.text, b.stop_reason):
            mismatches.append((name, prefix[-40:], a.text, b.text))
        drafted += b.timings.drafted
        accepted += b.timings.accepted
        passes += b.timings.passes
        tokens += b.timings.generated_tokens
        assert a.timings.passes == a.timings.generated_tokens or a.stop_reason != "length"
    assert not mismatches, json.dumps(mismatches[:3], indent=1)
    # the speculative path really ran: many drafts, both accepted and rejected, fewer passes
    assert accepted > 500 and drafted - accepted > 500, (drafted, accepted)
    assert passes < tokens


def test_speculation_is_on_by_default_only_for_large_models(tmp_path):
    tiny = LlamaCppBackend(TINY)
    assert not tiny.speculative and not tiny.flash_attn and not tiny._pad
    forced = LlamaCppBackend(TINY, LlamaSettings(speculative=True))
    # exactness without flash attention: every pass a batch (2+ rows)
    assert forced.speculative and not forced.flash_attn and forced._pad


def test_automatic_speculation_on_a_large_model_follows_the_measured_pad_cost(tmp_path, monkeypatch):
    # sc2-tiny taken for a large model: automatic speculation measures a padded pass against a
    # one-row pass at load and stays on only when it costs at most PAD_PAYS one-row passes
    from sc2lsp.backends import llama_cpp as lc

    monkeypatch.setattr(lc, "_small_model", lambda path: False)
    common = dict(n_threads=1, flash_attn=False, state_dir=str(tmp_path / "states"), state_disk_mb=8)
    for pays, on in ((100.0, True), (0.0, False)):
        monkeypatch.setattr(lc, "PAD_PAYS", pays)
        b = LlamaCppBackend(TINY, LlamaSettings(**common))
        assert b.pad_cost is not None and 0.5 < b.pad_cost < 20  # two rows cost about one to a few rows
        assert b.speculative is on and b._pad is on  # (without flash attention: padded exactly when speculating)
        assert b.policy.base_rows == (2 if on else 1) and b._same_shape is on
        assert b.disk.identity["stable_rows"] is on  # saved states are keyed by the rows decided
        b.close()
    monkeypatch.setattr(lc, "PAD_PAYS", 0.0)
    for explicit in (True, False):  # a setting given is kept, nothing measured
        b = LlamaCppBackend(TINY, LlamaSettings(speculative=explicit, **common))
        assert b.pad_cost is None and b.speculative is explicit
        b.close()


def test_passes_keep_one_row_without_speculation():
    # flash attention on several threads: padded when speculating (a one-row pass splits the
    # cache), one row otherwise (nothing is checked against a batch's rows)
    for spec in (True, False):
        b = LlamaCppBackend(TINY, LlamaSettings(speculative=spec, flash_attn=True, n_threads=2, state_cache_mb=0))
        assert b._pad is spec
        b.close()
    b = LlamaCppBackend(TINY, LlamaSettings(speculative=False, stable_rows=True, state_cache_mb=0))
    assert b._pad  # the exactness reference of the tests and the bench: asked for explicitly
    b.close()


def test_speculation_keeps_time_caps_cancellation_and_stops():
    spec = LlamaCppBackend(TINY, LlamaSettings(speculative=True))
    spec.policy = DraftPolicy(max_draft=8, extra_cost=1e-3, adaptive=False, base_rows=2)
    src = (ROOT / "sc2lsp" / "config.py").read_text()
    off = src.index("    def model_key(self)")
    prompt = infill_prompt(src[off - 2000:off], src[off:off + 1500], path="config.py")
    full = spec.generate(prompt, max_tokens=48)
    assert full.timings.accepted > 0  # drafts from the prompt were used here
    g = spec.generate(prompt, max_tokens=48, time_limit_s=0.0)
    assert g.stop_reason == "time" and g.text and full.text.startswith(g.text)
    g = spec.generate(prompt, max_tokens=48, should_stop=lambda: True)
    assert g.stop_reason == "cancelled" and g.timings.generated_tokens == 1
    first_line = full.text.split("\n", 1)[0]
    g = spec.generate(prompt, max_tokens=48, stop=("\n",))
    assert g.text == first_line and g.stop_reason == "stop"
    g = spec.generate(prompt, max_tokens=5)
    assert g.stop_reason == "length" and g.timings.generated_tokens == 5 and full.text.startswith(g.text)
    seen: list[str] = []
    g = spec.generate(prompt, max_tokens=48, on_text=lambda text: seen.append(text) or len(text) >= 10)
    assert g.stop_reason == "done" and full.text.startswith(g.text) and seen[-1] == g.text
    assert len(g.text) >= 10 and all(len(s) < 10 for s in seen[:-1])  # at the first token that made it true


def test_drafts_are_capped_by_draft_max():
    """At most ``draft_max`` drafted tokens per pass, whatever the policy would draft (the cap that
    ``bench/speculative_caps.py`` compares); the text does not depend on the cap."""
    src = (ROOT / "sc2lsp" / "config.py").read_text()
    off = src.index("    def model_key(self)")
    prompt = infill_prompt(src[off - 2000:off], src[off:off + 1500], path="config.py")
    texts, widest = {}, {}
    for cap in (4, 8):
        b = LlamaCppBackend(TINY, LlamaSettings(speculative=True, draft_max=cap))
        b.policy = DraftPolicy(max_draft=8, extra_cost=1e-3, adaptive=False, base_rows=2)  # would draft 8
        sizes = []
        one_pass = b._pass  # the token loop's passes (not the prompt's)
        b._pass = lambda t, toks: sizes.append(len(toks)) or one_pass(t, toks)
        g = b.generate(prompt, max_tokens=48)
        texts[cap], widest[cap] = g.text, max(sizes)
        b.close()
    assert widest[4] == 1 + 4 and widest[8] > 1 + 4
    assert texts[4] == texts[8]
