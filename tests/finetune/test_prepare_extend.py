"""``prepare NEW... extend=DIR`` (``finetune/extend.py``): more training repositories, the held-out part of
DIR unchanged, DIR's training rows first, and no copy of a held-out file trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_HF = ROOT / "models" / "sc2-tiny" / "hf"
pytestmark = pytest.mark.skipif(not (TINY_HF / "tokenizer.json").is_file(), reason="models/sc2-tiny/hf not built")

GRAPH = ("class Graph:\n    def add_node(self, n):\n        self.nodes[n] = {}\n\n"
         "    def add_edge(self, u, v):\n        self.edges.append((u, v))\n")
PATHS = "def path_graph(n):\n    return list(range(n))\n\n\ndef star_graph(n):\n    return n\n"


def _user(i: int) -> str:
    return (f"import pkg.paths as paths\nfrom pkg.graph import Graph\n\n\ndef ring{i}(n):\n    G{i} = Graph()\n"
            f"    nodes{i} = paths.path_graph(n + {i})\n    return G{i}, nodes{i}\n")


SHAPES = "class Shape:\n    def area(self):\n        return 0\n\n\ndef unit_square():\n    return Shape()\n"
DRAW = ("from geo.shapes import Shape, unit_square\n\n\ndef draw(s):\n    sq = unit_square()\n"
        "    total_area = Shape.area(sq)\n    return total_area, s\n")


def _write(root: Path, files) -> Path:
    for p, t in files:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_text(t)
    return root


def _cfg(out: Path, **kw):
    from finetune.prepare import RepoDataConfig

    base = dict(out=str(out), seq_len=256, epochs=1, heldout_fraction=0.3, samples="server", server_context_rate=1.0,
                attribution=False, progress=False, dedup_threshold=0.9)
    return RepoDataConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """An earlier prepare of one repository, some of whose files are held out."""
    from finetune.prepare import prepare

    tmp = tmp_path_factory.mktemp("base")
    repo = _write(tmp / "proj", [("pkg/graph.py", GRAPH), ("pkg/paths.py", PATHS)]
                  + [(f"pkg/user{i}.py", _user(i)) for i in range(8)])
    prepare([repo], _cfg(tmp / "data"))
    spec = json.loads((tmp / "data" / "heldout_files.json").read_text())
    assert spec["files"]  # the fixture is only useful with held-out files
    return tmp / "data"


def _decoded_lines(data: Path, rows: np.ndarray, mask: np.ndarray) -> str:
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(data / "tokenizer"))
    return "".join(tok.decode(rows[i][mask[i] == 1]) for i in range(len(rows)))


def test_extend_keeps_the_held_out_part_and_appends_training_rows(base, tmp_path):
    from finetune.prepare import prepare

    spec = json.loads((base / "heldout_files.json").read_text())
    held_key = spec["files"][0]
    held_text = (base / "heldout" / held_key).read_text()
    other = _write(tmp_path / "geo", [("geo/shapes.py", SHAPES), ("geo/draw.py", DRAW),
                                      ("geo/vendored_copy.py", held_text)])  # a copy of an evaluated file
    out = tmp_path / "more"
    m = prepare([other], _cfg(out, extend=str(base)))

    # the held-out part is the base's, byte for byte
    assert json.loads((out / "heldout_files.json").read_text()) == spec
    for name in ("heldout.npy", "heldout_mask.npy"):
        assert (out / name).read_bytes() == (base / name).read_bytes()
    assert (out / "heldout" / held_key).read_text() == held_text
    # training rows: the base's first, unchanged, then the new repository's
    old_rows, old_mask = np.load(base / "train.npy"), np.load(base / "train_mask.npy")
    rows, mask = np.load(out / "train.npy"), np.load(out / "train_mask.npy")
    assert rows.dtype == old_rows.dtype and len(rows) > len(old_rows)
    assert np.array_equal(rows[:len(old_rows)], old_rows) and np.array_equal(mask[:len(old_mask)], old_mask)
    taught_new = _decoded_lines(out, rows[len(old_rows):], mask[len(old_rows):])
    assert "sq = unit_square()" in taught_new and "ring" not in taught_new
    # the copy of the held-out file is dropped, and nothing of the new repository is held out
    files = {f["path"]: f for f in m["files"]}
    copy = files["geo/geo/vendored_copy.py"]
    assert not copy["kept"] and copy["reason"] == f"exact duplicate of held-out of the extended data: {held_key}"
    assert files["geo/geo/draw.py"]["split"] == "train"
    assert m["heldout_files"] == len(spec["files"]) and m["heldout_tokens"] == np.load(base / "heldout.npy").size
    assert m["repos"] == ["proj", "geo"] and m["extends"]["train_rows"] == len(old_rows)
    assert m["extends"]["new_train_rows"] == len(rows) - len(old_rows) and m["train_tokens"] == rows.size
    assert m["config"]["extend"] == str(base)


def test_a_near_copy_of_a_held_out_file_is_dropped_too(base, tmp_path):
    from finetune.prepare import prepare

    spec = json.loads((base / "heldout_files.json").read_text())
    held_text = (base / "heldout" / spec["files"][0]).read_text()
    near = held_text + "\n\ndef extra(n):\n    return n\n"
    other = _write(tmp_path / "geo", [("geo/shapes.py", SHAPES), ("geo/draw.py", DRAW), ("geo/near.py", near)])
    m = prepare([other], _cfg(tmp_path / "more", extend=str(base), dedup_threshold=0.5))
    reason = {f["path"]: f["reason"] for f in m["files"]}["geo/geo/near.py"]
    assert reason.startswith("near duplicate of held-out of the extended data: ")


def test_extend_refuses_what_would_mix_up_the_data(base, tmp_path):
    from finetune.prepare import prepare

    other = _write(tmp_path / "geo", [("geo/shapes.py", SHAPES), ("geo/draw.py", DRAW)])
    source = Path(json.loads((base / "manifest.json").read_text())["sources"][0])
    with pytest.raises(ValueError, match="overlaps its source"):
        prepare([source], _cfg(tmp_path / "a", extend=str(base)))
    same_name = _write(tmp_path / "x" / "proj", [("geo/shapes.py", SHAPES), ("geo/draw.py", DRAW)])
    with pytest.raises(ValueError, match="already in it"):
        prepare([same_name], _cfg(tmp_path / "b", extend=str(base)))
    with pytest.raises(ValueError, match="seq_len=256"):
        prepare([other], _cfg(tmp_path / "c", extend=str(base), seq_len=128))
    with pytest.raises(ValueError, match="samples=server"):
        prepare([other], _cfg(tmp_path / "d", extend=str(base), samples="repository"))
    with pytest.raises(ValueError, match="not a prepared data set"):
        prepare([other], _cfg(tmp_path / "e", extend=str(tmp_path / "geo")))
    assert not (tmp_path / "a").exists() and not (tmp_path / "e").exists()
