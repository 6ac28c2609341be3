"""``finetune prepare`` writes the attribution index of its corpus; ``export`` ships it and links it
in models.toml; the server's provider finds it through the model when no index is configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = ROOT / "models" / "sc2-tiny" / "hf"


def _module(i: int) -> str:
    import random

    rng = random.Random(1000 + i)
    words = ["invoice", "ledger", "refund", "discount", "payment", "customer", "account", "balance", "tax",
             "currency", "order", "credit", "debit", "period", "report", "total"]
    out = [f'"""Billing helpers: {" ".join(rng.sample(words, 4))}."""\n\nimport decimal\n']
    for j in range(12):
        a, b, c = rng.sample(words, 3)
        out.append(f"def {a}_{b}_{j}({c}, unit_price, rate=0.{rng.randint(10, 99)}):\n"
                   f"    {a} = decimal.Decimal({c}) * decimal.Decimal(unit_price) + {rng.randint(0, 999)}\n"
                   f"    {b} = {a} * (1 + decimal.Decimal(str(rate)))  # {' '.join(rng.sample(words, 5))}\n"
                   f"    return {a}.quantize(decimal.Decimal('0.01')), {b}.quantize(decimal.Decimal('0.01'))\n")
    return "\n".join(out)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from finetune.prepare import RepoDataConfig, prepare

    tmp = tmp_path_factory.mktemp("ft-attr")
    repo = tmp / "billing"
    (repo / "billing").mkdir(parents=True)
    (repo / "LICENSE").write_text("MIT License\n\nCopyright (c) 2025 Billing\n\nPermission is hereby granted, free "
                                  "of charge, to any person obtaining a copy\nof this software\n")
    for i in range(6):
        (repo / "billing" / f"m{i}.py").write_text(_module(i))
    (repo / "billing" / "contact.py").write_text(
        "# contact the maintainer of this module before changing the rounding rules please\n"
        "MAINTAINER = 'Jane Roe <jane.roe@billing-example.org>'  # the person who owns the invoices\n")
    data = tmp / "data"
    manifest = prepare([repo], RepoDataConfig(out=str(data), tokenizer=str(TOKENIZER), seq_len=64, epochs=1,
                                              progress=False))
    return repo, data, manifest


def test_prepare_writes_the_index_and_check_finds_a_copy(prepared):
    repo, data, manifest = prepared
    info = manifest["attribution_index"]
    assert info["path"] == "attribution" and info["documents"] == manifest["kept_files"] == 7
    assert (data / "attribution" / "manifest.json").is_file()
    assert "attribution index" in (data / "DATASHEET.md").read_text()

    snippet = textwrap.indent(_module(3).split("\n\n")[4], "        ")  # one function, re-indented
    r = subprocess.run([sys.executable, "-m", "sc2lsp.cli", "attribution", "check", "--index",
                        str(data / "attribution"), "--json"], input=snippet, capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 0, r.stderr
    spans = json.loads(r.stdout)["spans"]
    assert spans, r.stdout
    src = spans[0]["sources"][0]
    assert src["path"] == "billing/m3.py" and src["license"] == "MIT" and src["repository"] == "billing"
    assert src["root"] == str(repo.resolve())

    # the index holds what the model was trained on: the redacted text, not the e-mail address
    from sc2lsp.attribution.query import AttributionIndex

    index = AttributionIndex.open(data / "attribution")
    line = "MAINTAINER = 'Jane Roe <jane.roe@billing-example.org>'  # the person who owns the invoices\n"
    assert not index.check("# contact the maintainer of this module before changing the rounding rules please\n"
                           + line)[0].text.count("jane.roe@")
    # and the repository itself, as a workspace, never matches it
    assert index.check(snippet, exclude=[repo]) == []


def test_export_ships_and_links_the_index(prepared, tmp_path, monkeypatch):
    from finetune.export_lora import registry_entry, ship_attribution_index, upsert_entry
    from sc2lsp.attribution.provider import AttributionProvider
    from sc2lsp.models.registry import indexes_for_model, load_registry

    repo, data, _ = prepared
    out = tmp_path / "export"
    out.mkdir()
    gguf = out / "mine-q8_0.gguf"
    gguf.write_bytes(Path(ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf").read_bytes()[:4096])
    shipped = ship_attribution_index(data, out / "mine-attribution")
    assert shipped == out / "mine-attribution" and (shipped / "manifest.json").is_file()
    assert ship_attribution_index(tmp_path, out / "none") is None  # data without an index: nothing linked

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    user = tmp_path / "config" / "sc2lsp" / "models.toml"
    entry = registry_entry("mine", gguf, "q8_0", description="x", context_length=2048, hf_checkpoint=None,
                           attribution_index=[shipped])
    assert "attribution_index = [" in entry
    upsert_entry(user, "mine", entry)
    reg = load_registry(user=user)
    assert reg.models["mine"].attribution_index == (shipped.resolve(),)
    assert indexes_for_model("mine", reg) == (shipped.resolve(),)
    assert indexes_for_model(str(gguf), reg) == (shipped.resolve(),)  # a .gguf path finds its entry
    assert indexes_for_model("starcoder2-3b", reg) == ()  # an entry that links none

    provider = AttributionProvider()
    paths = provider.indexes((), "mine")  # attributionIndex not set: the model's linked indexes
    assert paths == (shipped.resolve(),)
    snippet = _module(5).split("\n\n")[2].replace("    ", "\t")
    found = provider.check(snippet, paths, exclude=[tmp_path / "elsewhere"])
    assert found.spans and found.spans[0]["sources"][0]["path"] == "billing/m5.py"
    assert provider.check(snippet, paths, exclude=[repo]).spans == ()


def test_registry_rejects_a_bad_attribution_index_key(tmp_path):
    from sc2lsp.errors import UserError
    from sc2lsp.models.registry import parse_models_toml

    p = tmp_path / "models.toml"
    p.write_text('[models.x]\ndescription = "x"\nlicense = "MIT"\ncontext_length = 8\ndefault_quant = "Q"\n'
                 'attribution_index = [1, 2]\n[models.x.quants.Q]\npath = "x.gguf"\n')
    with pytest.raises(UserError, match=r"models\.x\.attribution_index: must be a list of index directories"):
        parse_models_toml(p)
    p.write_text(p.read_text().replace("[1, 2]", '"idx"'))
    _, entries = parse_models_toml(p)
    assert entries["x"].attribution_index == (tmp_path / "idx",)


def test_stdlib_index_of_sc2_tiny_corpus(tmp_path):
    """`make attribution-index` (here on the first 40 files): sc2-tiny's corpus, PSF-2.0, verified on disk."""
    from finetune.data.collect import STDLIB_EXCLUDE, collect, stdlib_root
    from finetune.export import build_stdlib_attribution_index
    from sc2lsp.attribution.query import AttributionIndex
    from sc2lsp.models.registry import indexes_for_model, load_registry

    info = build_stdlib_attribution_index(tmp_path / "idx", max_files=40)
    assert info["documents"] == 40
    first = [c for c in collect(stdlib_root(), (".py",), STDLIB_EXCLUDE) if c.text is not None and len(c.text) > 3000][0]
    piece = first.text[1000:1600]
    spans = AttributionIndex.open(tmp_path / "idx").check(textwrap.indent(piece, "\t"))
    assert spans and spans[0].sources[0].path == first.path and spans[0].sources[0].license == "PSF-2.0"
    assert spans[0].sources[0].verified and spans[0].sources[0].repository.startswith("cpython-stdlib-")
    # and the project's models.toml links sc2-tiny to where `make attribution-index` writes it
    assert indexes_for_model("sc2-tiny", load_registry()) == (ROOT / "models" / "sc2-tiny" / "attribution",)
