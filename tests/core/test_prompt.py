"""The StarCoder2 prompt formats: exact strings (golden files) and the properties training relies on."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from sc2lsp.core.prompt import FimMode, SourceFile, fim_transform, infill_prompt, repository_sample
from sc2lsp.core.tokens import ENDOFTEXT, FILE_SEP, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, REPO_NAME, SPECIAL_TOKENS

GOLDEN = Path(__file__).parents[1] / "golden" / "prompt"
UPDATE = os.environ.get("SC2LSP_UPDATE_GOLDEN") == "1"

CTX = (SourceFile("pkg/util.py", "def helper(x):\n    return x * 2\n"), SourceFile("README.md", "# demo\n"))
CASES = {
    "spm_repo_context": dict(prefix="import pkg\n\ndef f(a):\n    return pkg.", suffix="\n\nprint(f(1))\n",
                             path="pkg/main.py", repo="acme/demo", context=CTX, mode=FimMode.SPM),
    "psm_repo_context": dict(prefix="import pkg\n\ndef f(a):\n    return pkg.", suffix="\n\nprint(f(1))\n",
                             path="pkg/main.py", repo="acme/demo", context=CTX, mode=FimMode.PSM),
    "spm_bare": dict(prefix="x = [1, 2", suffix="]\n", mode=FimMode.SPM),
    "psm_unicode": dict(prefix="s = 'héllo 😀 ", suffix="'\n", path="u.py", mode=FimMode.PSM),
}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.write_text(text, encoding="utf-8", newline="")
    assert path.read_text(encoding="utf-8") == text, f"{name} differs from {path} (SC2LSP_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_infill_prompt_golden(name):
    check_golden(name, infill_prompt(**CASES[name]))


def test_repository_sample_golden():
    files = [SourceFile("a.py", "def a():\n    return 1\n"), SourceFile("b.py", "B = 2\n"), SourceFile("c.py", "C = 3\n")]
    samples = [repository_sample(files, random.Random(seed), repo="acme/demo") for seed in range(4)]
    check_golden("repository_samples", "\n=====\n".join(samples))


def test_spm_puts_prefix_last_so_typing_changes_only_the_tail():
    kw = dict(suffix="\n    return y\n", path="m.py", repo="r", context=CTX)
    before = infill_prompt("def g(y):\n    y = ", **kw)
    after = infill_prompt("def g(y):\n    y = y", **kw)
    assert after.startswith(before)
    psm_before = infill_prompt("def g(y):\n    y = ", mode=FimMode.PSM, **kw)
    psm_after = infill_prompt("def g(y):\n    y = y", mode=FimMode.PSM, **kw)
    assert not psm_after.startswith(psm_before)  # PSM: the suffix after the cursor moves


def test_fim_transform_keeps_every_character():
    rng = random.Random(7)
    text = "def f(x):\n    return [i for i in range(x)]\n"
    for _ in range(200):
        s = fim_transform(text, rng, spm_rate=0.5)
        assert s.startswith(FIM_PREFIX) and s.count(FIM_MIDDLE) == 1 and s.count(FIM_SUFFIX) == 1
        if s.startswith(FIM_PREFIX + FIM_SUFFIX):  # SPM: suffix, then prefix + middle
            suf, pre_mid = s[len(FIM_PREFIX + FIM_SUFFIX):].split(FIM_MIDDLE)
            assert pre_mid + suf == text
        else:  # PSM
            pre, rest = s[len(FIM_PREFIX):].split(FIM_SUFFIX)
            suf, mid = rest.split(FIM_MIDDLE)
            assert pre + mid + suf == text


def test_repository_sample_rates():
    rng = random.Random(0)
    files = [SourceFile(f"f{i}.py", f"x{i} = {i}\n" * 3) for i in range(4)]
    docs = [repository_sample(files, rng, repo="r") for _ in range(400)]
    with_meta = sum(d.startswith(REPO_NAME) for d in docs) / len(docs)
    fragments = [frag for d in docs for frag in d.removesuffix(ENDOFTEXT).split(FILE_SEP)[1:]]
    fim = sum(f.startswith(FIM_PREFIX) for f in fragments) / len(fragments)
    spm = sum(f.startswith(FIM_PREFIX + FIM_SUFFIX) for f in fragments) / max(1, sum(f.startswith(FIM_PREFIX) for f in fragments))
    assert 0.4 < with_meta < 0.6 and 0.45 < fim < 0.55 and 0.4 < spm < 0.6
    assert all(d.endswith(ENDOFTEXT) and d.count(FILE_SEP) == 4 for d in docs)
    assert not any(".py" in d for d in docs if not d.startswith(REPO_NAME))  # no metadata: no paths


def test_special_tokens_order():
    assert SPECIAL_TOKENS[:7] == ("<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>",
                                  "<repo_name>", "<file_sep>")
    assert SPECIAL_TOKENS[-4:] == ("<NAME>", "<EMAIL>", "<KEY>", "<PASSWORD>") and len(set(SPECIAL_TOKENS)) == 38


def test_windows_line_endings_enter_no_prompt_and_no_training_sample():
    ctx = [SourceFile("b.py", "def b():\r\n    return 1\r\n")]
    for mode in FimMode:
        crlf = infill_prompt("x = 1\r\ny = ", "\r\nz = 3\r\n", path="a.py", repo="r", context=ctx, mode=mode)
        lf = infill_prompt("x = 1\ny = ", "\nz = 3\n", path="a.py", repo="r",
                           context=[SourceFile("b.py", "def b():\n    return 1\n")], mode=mode)
        assert crlf == lf and "\r" not in crlf
    files = [SourceFile("a.py", "a = 1\r\n" * 40), SourceFile("b.py", "b = 2\r\n" * 40)]
    for seed in range(20):
        assert "\r" not in repository_sample(files, random.Random(seed), repo="r", fim_rate=1.0)
