"""``finetune export`` editing the user's models.toml: exact names, comments and other entries kept
byte for byte, a unique temporary file under a lock, nothing half-written."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from finetune.toml_edit import header_keys, replace_entry, upsert

USER = """# my models (hand-written; keep this comment)
[models.sc2]   # the short one
path = "/models/sc2.gguf"   # inline comment
description = "mine"

# the custom build, do not touch
[models."sc2.custom"]
path = "/models/custom.gguf"

[models.sc2.quants.q8]
file = "sc2-q8.gguf"

[models.other]
path = "/models/other.gguf"\r
"""
NEW = '[models.sc2]\npath = "/runs/sc2-new.gguf"\n'


def test_header_keys():
    assert header_keys('[models."sc2.custom"]') == ["models", "sc2.custom"]
    assert header_keys("[ models . sc2 . quants.q8 ]  # x") == ["models", "sc2", "quants", "q8"]
    assert header_keys("[[models.x]]") == ["models", "x"]
    assert header_keys("path = 1") is None and header_keys('x = "[models.a]"') is None


def test_replace_keeps_everything_else_byte_for_byte():
    out = replace_entry(USER, "sc2", NEW)
    assert out.startswith("# my models (hand-written; keep this comment)\n" + NEW)
    assert "# the custom build, do not touch\n[models.\"sc2.custom\"]\npath = \"/models/custom.gguf\"\n" in out
    assert "[models.sc2.quants.q8]" not in out  # the replaced entry's sub-table went with it
    assert out.endswith('[models.other]\npath = "/models/other.gguf"\r\n')
    assert "/models/sc2.gguf" not in out
    # replacing "sc2.custom" leaves "sc2" alone
    out2 = replace_entry(USER, "sc2.custom", '[models."sc2.custom"]\npath = "/x.gguf"\n')
    assert '[models.sc2]   # the short one\npath = "/models/sc2.gguf"   # inline comment\n' in out2
    assert "/models/custom.gguf" not in out2 and "/x.gguf" in out2


def test_append_when_missing_and_validation_failure_keeps_the_file(tmp_path):
    p = tmp_path / "models.toml"
    p.write_text(USER, newline="")
    p.chmod(0o640)
    upsert(p, "brand-new", '[models.brand-new]\npath = "/b.gguf"\n')
    text = p.read_bytes().decode()
    assert text.startswith(USER) and text.endswith('[models.brand-new]\npath = "/b.gguf"\n')
    assert oct(p.stat().st_mode & 0o777) == "0o640"

    def bad(tmp: Path):
        raise ValueError("invalid registry")

    with pytest.raises(ValueError):
        upsert(p, "sc2", NEW, validate=bad)
    assert p.read_bytes().decode() == text  # unchanged
    assert sorted(x.name for x in tmp_path.iterdir()) == ["models.toml", "models.toml.lock"]  # no temp left


def _add(args):
    path, i = args
    upsert(Path(path), f"m{i}", f'[models.m{i}]\npath = "/m{i}.gguf"\n')


def test_concurrent_exports_lose_nothing(tmp_path):
    p = tmp_path / "models.toml"
    p.write_text(USER, newline="")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_add, [(str(p), i) for i in range(24)])
    text = p.read_bytes().decode()
    assert all(f"[models.m{i}]" in text for i in range(24))
    assert text.startswith(USER)


def test_export_registers_through_the_safe_edit(tmp_path):
    from finetune.export_lora import registry_entry, upsert_entry
    from sc2lsp.models.registry import parse_models_toml

    p = tmp_path / "models.toml"
    gguf = tmp_path / "x.gguf"
    entry = lambda n: registry_entry(n, gguf, "q8_0", description="x", context_length=2048,  # noqa: E731
                                     hf_checkpoint=None)
    gguf.write_bytes(b"GGUF")
    assert '[models."sc2.custom"]' in entry("sc2.custom")  # a dotted name is one quoted key
    p.write_text("# keep this\n" + entry("sc2") + "\n# and this\n" + entry("sc2.custom"))
    before = p.read_bytes().decode()
    custom = before[before.index("# and this"):]
    upsert_entry(p, "sc2", entry("sc2").replace('description = "x"', 'description = "new"'))
    after = p.read_bytes().decode()
    assert after.startswith("# keep this\n") and after.endswith(custom) and 'description = "new"' in after
    parse_models_toml(p)
