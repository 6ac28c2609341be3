"""HF -> GGUF conversion: tokenizer ids, logits and greedy FIM parity with transformers, LoRA adapters, bad input.

Every parity test runs on the session's random ``debug`` checkpoint and, when it exists, on the
shipped model's HF checkpoint ``models/sc2-tiny/hf``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sc2lsp.core.prompt import SourceFile, infill_prompt
from sc2lsp.core.tokens import FILE_SEP, FIM_TOKENS, SPECIAL_TOKENS, STOP_TOKENS
from sc2lsp.errors import UserError
from sc2lsp.models.convert import convert_checkpoint
from sc2lsp.models.gguf_lora import convert_lora
from sc2lsp.models.gguf_tensors import checkpoint_tensors, load_f32

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_HF = ROOT / "models" / "sc2-tiny" / "hf"
TYPES = ("f32", "f16", "q8_0", "q4_k_m")

HARD_STRINGS = [
    "",
    " ",
    "def f(x):\n    return x + 1\n",
    "<fim_prefix>def f(<fim_suffix>)\n<fim_middle>",
    "<fim_prefix><fim_suffix>    pass\n<fim_middle>x = 1",
    "<repo_name>octo/demo<file_sep>src/a.py\nimport os<file_sep>b.py\n<|endoftext|>",
    "<fim_pre <file_sep <fim_prefix",  # almost-special text stays text
    "emoji 😀👍🏽 and 🇫🇷 flags",
    "中文注释 日本語のコメント 한국어",
    "naïve café, Ωμέγα, ℕ, e\u0301",
    "x = 1234567890 + 00012 * 3.14159e-10",
    "line1\r\nline2\r\n\r\n",
    "\tindented\n\t\tdouble\t tab \t\n",
    "trailing spaces   \nmore    ",
    "   leading and\n\n\n\n   blank lines\n",
    "s = '''tri\\nple''' # \"quotes\" `ticks` $var @deco ~!%^&*()[]{}|\\",
]


# ----------------------------------------------------------------------------- fixtures


def shipped_hf() -> Path:
    if not (SHIPPED_HF / "config.json").is_file():
        pytest.skip(f"{SHIPPED_HF} not built yet")
    return SHIPPED_HF


@pytest.fixture(scope="module")
def memorized_checkpoint(tiny_hf_checkpoint, tmp_path_factory) -> Path:
    """The random debug model after a few full-batch steps on one FIM sample (the fim_prompt() answer).

    A random model's next-token distribution is flat, so quantization noise flips its greedy
    choices (near-ties); this one is confident, as a trained model is, which makes "identical
    greedy text" a fair requirement for q8_0.
    """
    import torch
    from transformers import AutoTokenizer, Starcoder2ForCausalLM

    model = Starcoder2ForCausalLM.from_pretrained(tiny_hf_checkpoint, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(tiny_hf_checkpoint)
    x = torch.tensor([tok(fim_prompt() + FIM_MIDDLE_TEXT + FILE_SEP, add_special_tokens=False)["input_ids"]])
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    for _ in range(25):
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = tmp_path_factory.mktemp("memorized")
    model.eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


def pick(request, name: str) -> Path:
    if name == "sc2-tiny":
        return shipped_hf()
    return request.getfixturevalue({"debug-random": "tiny_hf_checkpoint", "debug-memorized": "memorized_checkpoint"}[name])


@pytest.fixture(scope="module", params=["debug-random", "sc2-tiny"])
def hf_dir(request) -> Path:
    return pick(request, request.param)


@pytest.fixture(scope="module", params=["debug-memorized", "sc2-tiny"])
def confident_dir(request) -> Path:
    return pick(request, request.param)


_converted: dict[tuple[str, str], Path] = {}
_models: dict[str, tuple] = {}


@pytest.fixture(scope="module")
def gguf_of(tmp_path_factory):
    """``gguf_of(hf_dir, type)``: the converted GGUF, converted once per module."""

    def get(hf_dir: Path, type_: str) -> Path:
        key = (str(hf_dir), type_)
        if key not in _converted:
            _converted[key] = convert_checkpoint(hf_dir, tmp_path_factory.mktemp("gguf") / f"model-{type_}.gguf", type_)
        return _converted[key]

    yield get
    _converted.clear()


@pytest.fixture(scope="module")
def ggufs(hf_dir, gguf_of) -> dict[str, Path]:
    return {t: gguf_of(hf_dir, t) for t in TYPES}


def load_hf(hf_dir: Path):
    import torch
    from transformers import AutoTokenizer, Starcoder2ForCausalLM

    if str(hf_dir) not in _models:
        model = Starcoder2ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
        _models[str(hf_dir)] = (model, AutoTokenizer.from_pretrained(hf_dir))
    return _models[str(hf_dir)]


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    return load_hf(hf_dir)


def llama(path: Path, **kw):
    from llama_cpp import Llama

    from sc2lsp.backends.llama_cpp import repacking

    with repacking(False):  # as the backend loads it (repacking crashes on AMX CPUs)
        return Llama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False, **kw)


def hf_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def llama_logits(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


FIM_MIDDLE_TEXT = " math.sqrt(v.x * v.x + v.y * v.y)"


def fim_prompt() -> str:
    ctx = [SourceFile("geometry/vec.py", "class Vec:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n")]
    return infill_prompt(
        "import math\n\n\ndef norm(v):\n    return",
        "\n\n\ndef dot(a, b):\n    return a.x * b.x + a.y * b.y\n",
        path="geometry/ops.py",
        repo="demo",
        context=ctx,
    )


def greedy_hf(model, ids: list[int], stop: set[int], n: int = 16) -> list[int]:
    out = []
    for _ in range(n):
        t = int(hf_logits(model, ids + out)[-1].argmax())
        if t in stop:
            break
        out.append(t)
    return out


def greedy_llama(llm, ids: list[int], stop: set[int], n: int = 16) -> list[int]:
    out = []
    llm.reset()
    for t in llm.generate(ids, temp=0.0, top_k=1, reset=True):
        if t in stop or len(out) == n:
            break
        out.append(t)
    return out


# ----------------------------------------------------------------------------- parity


def test_metadata(hf_dir, ggufs):
    from gguf import GGUFReader, GGUFValueType

    r = GGUFReader(ggufs["f32"])
    f = r.fields
    assert f["general.architecture"].contents() == "starcoder2"
    cfg = json.loads((hf_dir / "config.json").read_text())
    assert f["starcoder2.block_count"].contents() == cfg["num_hidden_layers"]
    assert f["starcoder2.embedding_length"].contents() == cfg["hidden_size"]
    assert f["starcoder2.attention.head_count_kv"].contents() == cfg["num_key_value_heads"]
    theta = cfg.get("rope_parameters", {}).get("rope_theta", cfg.get("rope_theta"))
    assert f["starcoder2.rope.freq_base"].contents() == pytest.approx(theta)
    assert f["tokenizer.ggml.model"].contents() == "gpt2" and f["tokenizer.ggml.pre"].contents() == "starcoder"
    tokens = f["tokenizer.ggml.tokens"].contents()
    assert tokens[:38] == list(SPECIAL_TOKENS)
    assert f["tokenizer.ggml.token_type"].contents()[:38] == [3] * 38  # CONTROL
    assert all(isinstance(m, str) and m.count(" ") == 1 for m in f["tokenizer.ggml.merges"].contents()[:100])
    assert f["tokenizer.ggml.bos_token_id"].contents() == f["tokenizer.ggml.eos_token_id"].contents() == 0
    fim = {k: f[f"tokenizer.ggml.fim_{k}_token_id"] for k in ("pre", "suf", "mid", "pad", "rep", "sep")}
    assert {k: v.contents() for k, v in fim.items()} == {"pre": 1, "suf": 3, "mid": 2, "pad": 4, "rep": 5, "sep": 6}
    assert all(v.types == [GGUFValueType.UINT32] for v in fim.values())
    names = {t.name for t in r.tensors}
    assert ("output.weight" in names) == (not cfg.get("tie_word_embeddings", True))
    assert len(names) == 3 + 16 * cfg["num_hidden_layers"] + (0 if cfg.get("tie_word_embeddings", True) else 1)
    ftypes = {t: GGUFReader(p).fields["general.file_type"].contents() for t, p in ggufs.items()}
    assert ftypes == {"f32": 0, "f16": 1, "q8_0": 7, "q4_k_m": 15}


def test_token_ids_match_hf_tokenizer(hf_model, ggufs):
    _, tok = hf_model
    llm = llama(ggufs["f32"], vocab_only=True)
    texts = HARD_STRINGS + [fim_prompt(), Path(json.__file__).read_text()[:3000]]
    for text in texts:
        expected = tok(text, add_special_tokens=False)["input_ids"]
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == expected, repr(text)
        # llama.cpp adds no BOS even when asked (add_bos_token = false, as StarCoder2)
        assert llm.tokenize(text.encode(), add_bos=True, special=True) == expected, repr(text)
    ids = tok("<fim_prefix><file_sep><repo_name><|endoftext|>", add_special_tokens=False)["input_ids"]
    assert ids == [1, 6, 5, 0]
    assert llm.detokenize(tok("naïve 😀 中文\r\n\t", add_special_tokens=False)["input_ids"]).decode() == "naïve 😀 中文\r\n\t"


@pytest.mark.slow
@pytest.mark.parametrize("type_,tol", [("f32", 1e-2), ("f16", 5e-2)])
def test_logits_parity(hf_model, ggufs, type_, tol):
    model, tok = hf_model
    ids = tok(fim_prompt(), add_special_tokens=False)["input_ids"]
    ref = hf_logits(model, ids)
    got = llama_logits(llama(ggufs[type_], logits_all=True), ids)
    assert got.shape == ref.shape
    diff = np.abs(got - ref).max()
    assert diff < tol, f"{type_}: max logit difference {diff:.4g} (logit std {ref.std():.3g})"


@pytest.mark.slow
@pytest.mark.parametrize("type_", ["f32", "f16", "q8_0"])
def test_greedy_fim_text_identical(confident_dir, gguf_of, type_):
    model, tok = load_hf(confident_dir)
    stop = {tok.convert_tokens_to_ids(t) for t in STOP_TOKENS}
    ids = tok(fim_prompt(), add_special_tokens=False)["input_ids"]
    expected = greedy_hf(model, ids, stop)
    got = greedy_llama(llama(gguf_of(confident_dir, type_)), ids, stop)
    assert expected, "the reference produced nothing; the test would be vacuous"
    assert tok.decode(got) == tok.decode(expected)
    assert got == expected


@pytest.mark.slow
def test_q4_k_m_loads_and_runs(hf_model, ggufs):
    model, tok = hf_model
    ids = tok(fim_prompt(), add_special_tokens=False)["input_ids"]
    ref = hf_logits(model, ids)
    llm = llama(ggufs["q4_k_m"], logits_all=True)
    got = llama_logits(llm, ids)
    assert np.isfinite(got).all()
    corr = np.corrcoef(got.ravel(), ref.ravel())[0, 1]
    assert corr > 0.95, corr  # a 4-bit model still computes the same function, roughly
    out = llm.create_completion(fim_prompt(), max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1
    assert ggufs["q4_k_m"].stat().st_size < ggufs["q8_0"].stat().st_size < ggufs["f16"].stat().st_size


# ----------------------------------------------------------------------------- checkpoint variants


@pytest.fixture(scope="module")
def untied_checkpoint(tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """A debug Starcoder2 with a separate lm_head (as StarCoder2-15B), saved sharded in bf16."""
    import torch

    from finetune.model import SHAPES, build_model
    from finetune.tokenizer import load

    tok = load(tiny_tokenizer_dir)
    model = build_model({**SHAPES["debug"], "tie_word_embeddings": False}, vocab_size=len(tok), seed=5)
    gen = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))
    out = tmp_path_factory.mktemp("untied")
    model.to(torch.bfloat16).save_pretrained(out, max_shard_size="100KB")
    tok.save_pretrained(out)
    return out


def test_sharded_bf16_untied_checkpoint(untied_checkpoint, tmp_path):
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer, Starcoder2ForCausalLM

    assert (untied_checkpoint / "model.safetensors.index.json").is_file()
    refs = checkpoint_tensors(untied_checkpoint)
    assert "lm_head.weight" in refs and all(r.dtype == "BF16" for r in refs.values())
    # the streaming reader returns exactly what safetensors itself reads
    for ref in list(refs.values())[:6]:
        with safe_open(ref.file, framework="pt") as f:
            assert np.array_equal(load_f32(ref), f.get_tensor(ref.name).float().numpy())

    gguf = convert_checkpoint(untied_checkpoint, tmp_path / "untied.gguf", "f32")
    model = Starcoder2ForCausalLM.from_pretrained(untied_checkpoint, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(untied_checkpoint)
    ids = tok(fim_prompt(), add_special_tokens=False)["input_ids"]
    diff = np.abs(llama_logits(llama(gguf, logits_all=True), ids) - hf_logits(model, ids)).max()
    assert diff < 1e-2


# ----------------------------------------------------------------------------- LoRA adapters


@pytest.mark.slow
def test_lora_adapter_matches_peft_merged_model(tiny_hf_checkpoint, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, Starcoder2ForCausalLM

    model = Starcoder2ForCausalLM.from_pretrained(tiny_hf_checkpoint, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_hf_checkpoint)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"]
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():  # B is zero after init: make it non-zero so the adapter changes the model
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = peft_model.merge_and_unload().eval()

    base = convert_checkpoint(tiny_hf_checkpoint, tmp_path / "base.gguf", "f32")
    adapter = convert_lora(tmp_path / "adapter", tiny_hf_checkpoint, tmp_path / "adapter.gguf")
    from gguf import GGUFReader

    r = GGUFReader(adapter)
    assert r.fields["general.type"].contents() == "adapter" and r.fields["adapter.type"].contents() == "lora"
    assert r.fields["adapter.lora.alpha"].contents() == 8.0
    assert len(r.tensors) == 2 * 6 * 2  # A and B for 6 modules in 2 layers
    ids = tok(fim_prompt(), add_special_tokens=False)["input_ids"]
    ref = hf_logits(merged, ids)
    with_adapter = llama_logits(llama(base, logits_all=True, lora_path=str(adapter)), ids)
    without = llama_logits(llama(base, logits_all=True), ids)
    assert np.abs(without - ref).max() > 0.5  # the adapter matters...
    assert np.abs(with_adapter - ref).max() < 1e-2  # ...and llama.cpp applies it as PEFT does


def test_lora_bad_input(tiny_hf_checkpoint, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "use_dora": True}))
    with pytest.raises(UserError, match="DoRA"):
        convert_lora(tmp_path / "a", tiny_hf_checkpoint, tmp_path / "x.gguf")
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    with pytest.raises(UserError, match="no adapter_model.safetensors"):
        convert_lora(tmp_path / "a", tiny_hf_checkpoint, tmp_path / "x.gguf")
    with pytest.raises(UserError, match="no such PEFT adapter directory"):
        convert_lora(tmp_path / "nope", tiny_hf_checkpoint, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


# ----------------------------------------------------------------------------- bad input


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def break_config(d: Path) -> str:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(model_type="llama", architectures=["LlamaForCausalLM"])
    (d / "config.json").write_text(json.dumps(cfg))
    return "model_type 'llama'.*only Starcoder2ForCausalLM"


def break_tokenizer(d: Path) -> str:
    data = json.loads((d / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in FIM_TOKENS[:3]]
    for t in FIM_TOKENS[:3]:
        data["model"]["vocab"].pop(t, None)
    (d / "tokenizer.json").write_text(json.dumps(data))
    return "no FIM tokens <fim_prefix>, <fim_middle>, <fim_suffix>"


def break_weights(d: Path) -> str:
    st = d / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    return "truncated"


@pytest.mark.parametrize("breaker", [break_config, break_tokenizer, break_weights])
def test_bad_checkpoint_is_one_user_error_and_leaves_no_file(tiny_hf_checkpoint, tmp_path, breaker):
    d = copy_checkpoint(tiny_hf_checkpoint, tmp_path / "ckpt")
    pattern = breaker(d)
    out = tmp_path / "out" / "m.gguf"
    out.parent.mkdir()
    out.write_bytes(b"previous good file")
    for t in ("f32", "q8_0"):
        with pytest.raises(UserError, match=pattern):
            convert_checkpoint(d, out, t)
    assert out.read_bytes() == b"previous good file"  # not clobbered
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.gguf"]  # no temporary files left


def test_missing_dir_and_unknown_type(tiny_hf_checkpoint, tmp_path):
    with pytest.raises(UserError, match="no such HF checkpoint directory"):
        convert_checkpoint(tmp_path / "nope", tmp_path / "m.gguf", "f32")
    with pytest.raises(UserError, match="unknown GGUF type 'q2'"):
        convert_checkpoint(tiny_hf_checkpoint, tmp_path / "m.gguf", "q2")
    (tmp_path / "weightless").mkdir()
    shutil.copy(tiny_hf_checkpoint / "config.json", tmp_path / "weightless")
    shutil.copy(tiny_hf_checkpoint / "tokenizer.json", tmp_path / "weightless")
    with pytest.raises(UserError, match="no model.safetensors"):
        convert_checkpoint(tmp_path / "weightless", tmp_path / "m.gguf", "f32")
    assert not (tmp_path / "m.gguf").exists()


def cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sc2lsp.cli", "models", "convert", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.slow
def test_cli(tiny_hf_checkpoint, tmp_path):
    r = cli(str(tiny_hf_checkpoint), str(tmp_path / "m.gguf"), "--type", "f16", "-q")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and (tmp_path / "m.gguf").stat().st_size > 100_000

    bad = copy_checkpoint(tiny_hf_checkpoint, tmp_path / "bad-config")
    break_config(bad)
    notok = copy_checkpoint(tiny_hf_checkpoint, tmp_path / "bad-tokenizer")
    break_tokenizer(notok)
    cases = [
        ([str(bad), str(tmp_path / "x.gguf")], "only Starcoder2ForCausalLM"),
        ([str(notok), str(tmp_path / "x.gguf")], "no FIM tokens"),
        ([str(tmp_path / "missing"), str(tmp_path / "x.gguf")], "no such HF checkpoint directory"),
        (["--lora", str(tmp_path / "missing"), str(tmp_path / "x.gguf")], "--lora needs --base"),
        (["--lora", str(tmp_path / "missing"), "--base", str(tiny_hf_checkpoint), str(tmp_path / "x.gguf")],
         "no such PEFT adapter directory"),
    ]
    for args, message in cases:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("error: ") and message in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "x.gguf").exists()


# ----------------------------------------------------------------------------- the 3B benchmark's checkpoint writer


def test_bench_checkpoint_writer_matches_transformers(tiny_tokenizer_dir, tmp_path):
    """bench/convert_rss.py writes the 3B checkpoint without torch; check its layout on the debug shape."""
    import importlib.util

    import torch
    from transformers import Starcoder2ForCausalLM

    from finetune.model import build_model, starcoder2_config

    spec = importlib.util.spec_from_file_location("convert_rss", ROOT / "bench" / "convert_rss.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    cfg = starcoder2_config("debug", 1536)
    cfg.save_pretrained(tmp_path)
    specs = bench.tensor_specs(json.loads((tmp_path / "config.json").read_text()))
    reference = {n: tuple(p.shape) for n, p in build_model("debug", 1536).named_parameters()}
    assert dict(specs) == reference
    bench.write_sharded_safetensors(tmp_path, specs, "bf16", shard_bytes=60_000)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_tokenizer_dir / f, tmp_path)
    assert len(list(tmp_path.glob("model-*.safetensors"))) >= 3
    model, info = Starcoder2ForCausalLM.from_pretrained(tmp_path, dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    w = model.model.layers[1].mlp.c_fc.weight.detach()
    assert 0.015 < float(w.std()) < 0.025 and float(model.model.norm.weight.detach().min()) == 1.0
    assert convert_checkpoint(tmp_path, tmp_path / "b.gguf", "q8_0").stat().st_size > 100_000
