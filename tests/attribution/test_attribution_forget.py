"""Attribution indexes no longer in use are closed: a settings change (``attributionIndex``, or the
model whose models.toml entry links indexes) makes the server drop the old ones, so their segment
files are no longer memory-mapped."""

from __future__ import annotations

import gc
from pathlib import Path
from types import SimpleNamespace

from sc2lsp.attribution.build import Document, build_index
from sc2lsp.attribution.provider import AttributionProvider
from sc2lsp.config import Settings
from sc2lsp.lsp.features.config import use_settings

CODE = "def rotate(points, angle):\n    c, s = math.cos(angle), math.sin(angle)\n    return [(c * x - s * y, s * x + c * y) for x, y in points]\n"


def mapped(index: Path) -> bool:
    """Whether any segment file of ``index`` is mapped into this process."""
    maps = Path("/proc/self/maps").read_text()
    return any(str(seg.resolve()) in maps for seg in index.glob("seg-*"))


def test_a_settings_change_closes_the_indexes_no_longer_in_use(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_index([Document(path="geo.py", text=CODE)], a, store_text=True)
    build_index([Document(path="other.py", text=CODE.replace("rotate", "turn"))], b, store_text=True)
    configured = []

    class Engine:
        def configure(self, settings):
            configured.append(settings)

    ls = SimpleNamespace(settings=Settings(attribution_index=[str(a)]), engine=Engine(),
                         workspaces=SimpleNamespace(enabled=True, start=lambda: None), attribution=AttributionProvider())
    found = ls.attribution.check(CODE, ls.attribution.indexes(ls.settings.attribution_index, None))
    assert found.spans and mapped(a)

    use_settings(ls, Settings(attribution_index=[str(b)]))  # the user points the setting elsewhere
    gc.collect()
    assert not mapped(a), "the index that is no longer configured is still mapped"
    assert list(ls.settings.attribution_index) == [str(b)]
    assert configured and ls.attribution.check(CODE, (b,)).spans and mapped(b)

    use_settings(ls, Settings(attribution_index=[str(b)], max_tokens=32))  # another setting: b stays open
    gc.collect()
    assert mapped(b)
