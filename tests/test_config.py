"""Settings parsing: camelCase or snake_case, nested under "sc2lsp" or not; bad values fall back."""

from __future__ import annotations

from sc2lsp.config import Settings, parse_settings


def test_defaults_and_both_spellings():
    s, problems = parse_settings({"maxTokens": 12, "max_lines": 3, "fimMode": "PSM", "languages": {"markdown": False}})
    assert problems == []
    assert (s.max_tokens, s.max_lines, s.fim_mode) == (12, 3, "psm")
    assert not s.enabled_for("markdown") and s.enabled_for("python")
    assert parse_settings({"sc2lsp": {"threads": 2}})[0].threads == 2
    assert parse_settings(None)[0] == Settings()


def test_invalid_values_fall_back_to_defaults_with_a_message():
    base = Settings(max_tokens=20)
    s, problems = parse_settings(
        {"maxTokens": 0, "threads": "two", "syntaxCheck": 1, "fimMode": "x", "model": "", "languages": [1], "what": 1},
        base,
    )
    assert s == Settings()
    assert len(problems) == 7
    assert any("maxTokens=0 is outside 1..4096" in p and "default maxTokens=64" in p for p in problems)
    assert any("unknown setting 'what'" in p for p in problems)
    assert parse_settings([1, 2])[1] == ["settings must be a JSON object, not list"]


def test_null_resets_a_setting_and_model_key():
    s, _ = parse_settings({"maxTokens": 10, "model": "x.gguf"})
    s2, problems = parse_settings({"maxTokens": None}, s)
    assert problems == [] and s2.max_tokens == 64 and s2.model == "x.gguf"
    assert s2.model_key() == s.model_key()
    assert parse_settings({"threads": 3}, s)[0].model_key() != s.model_key()
