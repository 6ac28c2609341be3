"""Server-format samples (``prepare samples=server``): the server's prompt at a line that uses another
file's name, that line as the middle, rows with a loss mask on it, and the loop's masked loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finetune.data.server_samples import Case, cross_file_lines, cut, pack_masked, server_prompt, server_samples
from sc2lsp.context.index import RepoIndex
from sc2lsp.core.budget import approx_tokens
from sc2lsp.core.prompt import FimMode, infill_prompt
from sc2lsp.core.tokens import ENDOFTEXT, FILE_SEP, FIM_MIDDLE

ROOT = Path(__file__).resolve().parents[2]
TINY_HF = ROOT / "models" / "sc2-tiny" / "hf"

GRAPH = ("class Graph:\n    def add_node(self, n):\n        self.nodes[n] = {}\n\n"
         "    def add_edge(self, u, v):\n        self.edges.append((u, v))\n")
PATHS = "def path_graph(n):\n    return list(range(n))\n\n\ndef star_graph(n):\n    return n\n"
USER = ('import pkg.paths as paths\nfrom pkg.graph import Graph\n\n\n'
        'def ring(n):\n    """Uses Graph and paths.path_graph."""\n    G = Graph()\n'
        '    nodes = paths.path_graph(n)\n    helper = local_thing(n)\n    return G, nodes, helper\n\n\n'
        'def local_thing(n):\n    # Graph in a comment\n    return n\n')
SECRET = "def held_out_only(n):\n    return n\n"  # a held-out file: never in a training index
FILES = [("pkg/graph.py", GRAPH), ("pkg/paths.py", PATHS), ("pkg/user.py", USER)]


def _index(files) -> RepoIndex:
    index = RepoIndex()
    for p, t in files:
        index.apply_change(p, t)
    return index


def test_cross_file_lines_are_uses_through_imports():
    index = _index(FILES)
    cases = cross_file_lines(index, "pkg/user.py")
    lines = USER.split("\n")
    got = [(lines[c.line].strip(), c.name) for c in cases]
    # the import lines, the docstring, the comment and the local function's use are not cases
    assert got == [("G = Graph()", "Graph"), ("nodes = paths.path_graph(n)", "path_graph")]
    c = cases[1]
    assert (c.col, c.target) == (4, "nodes = paths.path_graph(n)")
    prefix, suffix = cut(USER, c)
    assert prefix.endswith("    G = Graph()\n    ") and suffix.startswith("\n    helper = local_thing(n)")
    assert cross_file_lines(index, "pkg/graph.py") == []  # no imports: nothing crosses files


def test_a_name_many_files_define_is_no_case():
    crowd = [(f"pkg/m{i}.py", "def path_graph(n):\n    return n\n") for i in range(4)]
    index = _index(FILES + crowd)
    assert [c.name for c in cross_file_lines(index, "pkg/user.py")] == ["Graph"]


def test_server_prompt_is_the_servers_prompt_with_the_definition_first():
    index = _index(FILES)
    case = next(c for c in cross_file_lines(index, "pkg/user.py") if c.name == "path_graph")
    with_ctx = server_prompt(index, case, repo="r", total=512, count=approx_tokens)
    without = server_prompt(index, case, repo="r", total=512, count=approx_tokens, with_context=False)
    prefix, suffix = cut(USER, case)
    assert without == infill_prompt(prefix, suffix, path="pkg/user.py", repo="r", mode=FimMode.SPM)
    head, fim = with_ctx.split(FILE_SEP + "<fim_prefix>")
    assert "pkg/paths.py\n" in head and "def path_graph(n)" in head  # the definition block, before the file
    assert with_ctx.endswith(without.split(FILE_SEP, 1)[1]) and fim.endswith(FIM_MIDDLE.join(["", "pkg/user.py\n"
                                                                                              + prefix]))
    # nothing of the case's own line (the middle) is in the prompt
    assert "paths.path_graph(n)" not in with_ctx.split(FIM_MIDDLE)[1]


def test_server_samples_take_context_from_the_given_files_only():
    train = FILES + [("pkg/uses_secret.py", "from pkg.held import held_out_only\n\n\ndef f():\n"
                                            "    return held_out_only(3) + 1\n")]
    samples = server_samples(train, repo="r", count=approx_tokens, seed=0, context_rate=1.0)
    assert samples and all(SECRET not in p for p, _ in samples)
    assert all("held_out_only" not in m for _, m in samples)  # not defined in the given files: no case
    middles = sorted(m for _, m in samples)
    assert middles == ["G = Graph()", "nodes = paths.path_graph(n)"]
    with_held = server_samples(train + [("pkg/held.py", SECRET)], repo="r", count=approx_tokens, seed=0,
                               context_rate=1.0, cases_in={"pkg/uses_secret.py"})
    assert [m for _, m in with_held] == ["return held_out_only(3) + 1"]
    assert "def held_out_only(n)" in with_held[0][0]
    none = server_samples(train, repo="r", count=approx_tokens, seed=0, context_rate=0.0)
    assert all(p.count(FILE_SEP) == 1 for p, _ in none)  # no context block at all
    assert sorted(m for _, m in none) == middles  # the same cases: chosen by what the context would hold


def test_require_name_drops_the_lines_the_context_cannot_help():
    index = _index(FILES)
    case = next(c for c in cross_file_lines(index, "pkg/user.py") if c.name == "path_graph")
    assert server_prompt(index, case, repo="r", total=512, count=approx_tokens, require_name=True) is not None
    assert server_prompt(index, case, repo="r", total=512, count=approx_tokens, require_name=True,
                         with_context=False).count(FILE_SEP) == 1
    # a budget with no room for context: the server would not have helped there
    assert server_prompt(index, case, repo="r", total=64, count=approx_tokens, require_name=True) is None
    assert server_prompt(index, case, repo="r", total=64, count=approx_tokens) is not None


class CharTokenizer:
    """One token per character, ``<|endoftext|>`` one token (id 0): enough to check the packing."""

    def __len__(self):
        return 300

    def convert_tokens_to_ids(self, t):
        assert t == ENDOFTEXT
        return 0

    def _ids(self, text):
        parts = text.split(ENDOFTEXT)
        out = []
        for i, part in enumerate(parts):
            out += [ord(c) % 250 + 1 for c in part] + ([0] if i < len(parts) - 1 else [])
        return out

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [self._ids(t) for t in texts]}


def test_pack_masked_keeps_samples_whole_and_masks_the_middle_only():
    samples = [("a" * 5, "xy"), ("b" * 6, "z"), ("c" * 20, "toolong"), ("d" * 2, "w")]
    rows, mask, dropped = pack_masked(CharTokenizer(), samples, 12, heal=0)
    assert dropped == 1 and rows.shape == mask.shape == (2, 12)
    # row 0: aaaaa xy <eot> | pad; the next sample (6 + 2 tokens) does not fit whole
    assert rows[0, :8].tolist() == [ord("a") % 250 + 1] * 5 + [ord("x") % 250 + 1, ord("y") % 250 + 1, 0]
    assert mask[0].tolist() == [0] * 5 + [1, 1, 1] + [0] * 4
    assert mask[1].tolist() == [0] * 6 + [1, 1] + [0] * 2 + [1, 1]
    assert rows[1, -2:].tolist() == [ord("w") % 250 + 1, 0]
    # heal=1 (the default): the prompt's last token, which the server heals, is in the loss too
    healed = pack_masked(CharTokenizer(), samples, 12)[1]
    assert healed[0].tolist() == [0] * 4 + [1, 1, 1, 1] + [0] * 4
    assert healed[1].tolist() == [0] * 5 + [1, 1, 1] + [0] + [1, 1, 1]


def test_masked_labels_and_heldout_loss():
    torch = pytest.importorskip("torch")
    from finetune.loop import _labels, heldout_loss

    x = torch.tensor([[5, 6, 7, 8]])
    assert _labels(x, np.array([[0, 1, 1, 0]], dtype=np.uint8)).tolist() == [[-100, 6, 7, -100]]
    assert _labels(x, None) is x

    class Fixed(torch.nn.Module):
        """Logits that make the loss of predicting token t at any position equal to t / 10 (a stand-in)."""

        def forward(self, input_ids, labels):
            lab = labels[:, 1:]
            keep = lab != -100
            per = lab.float() / 10
            return type("Out", (), {"loss": per[keep].mean()})()

    rows = np.array([[1, 2, 3, 4], [1, 9, 9, 9]])
    mask = np.array([[0, 0, 1, 1], [0, 0, 0, 1]], dtype=np.uint8)
    # weighted by the tokens in the loss: (0.3 + 0.4 + 0.9) / 3, not the mean of the row means
    assert heldout_loss(Fixed(), rows, 1, 10, mask=mask) == pytest.approx((0.3 + 0.4 + 0.9) / 3)
    assert heldout_loss(Fixed(), rows, 2, 10, mask=mask) == pytest.approx((0.3 + 0.4 + 0.9) / 3)


@pytest.mark.skipif(not (TINY_HF / "tokenizer.json").is_file(), reason="models/sc2-tiny/hf not built")
def test_prepare_server_samples_writes_masked_rows(tmp_path):
    from finetune.prepare import RepoDataConfig, prepare

    repo = tmp_path / "proj"
    for p, t in FILES + [("pkg/extra.py", "from pkg.graph import Graph\n\n\ndef make():\n    g = Graph()\n    return g\n")]:
        (repo / p).parent.mkdir(parents=True, exist_ok=True)
        (repo / p).write_text(t)
    out = tmp_path / "data"
    cfg = RepoDataConfig(out=str(out), seq_len=256, epochs=1, heldout_fraction=0.0, min_heldout_files=0,
                         samples="server", server_context_rate=1.0, attribution=False, progress=False,
                         dedup_threshold=0.9)
    m = prepare([repo], cfg)
    rows, mask = np.load(out / "train.npy"), np.load(out / "train_mask.npy")
    assert rows.shape == mask.shape and m["train_tokens"] == rows.size
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(out / "tokenizer"))
    taught = {tok.decode(rows[i][mask[i] == 1]) for i in range(len(rows))}
    joined = "".join(taught)
    for line in ("G = Graph()" + ENDOFTEXT, "nodes = paths.path_graph(n)" + ENDOFTEXT, "g = Graph()" + ENDOFTEXT):
        assert line in joined
    assert json.loads((out / "manifest.json").read_text())["config"]["samples"] == "server"
    with pytest.raises(ValueError, match="samples must be"):
        RepoDataConfig(samples="servers")


# ``copy_weight`` (docs/context.md "Round 3"): the use of path_graph above the cursor brings pkg/paths.py
# into the context, star_graph with it; star_graph is named on its own line only (the import is of the
# module), so only the context can supply it; Graph is imported by name, path_graph used below (file part).
COPY = ('import pkg.paths as paths\nfrom pkg.graph import Graph\n\n\n'
        'def ring(n):\n    G = Graph()\n    first = paths.path_graph(n)\n    nodes = paths.star_graph(n)\n'
        '    return G, first, nodes, paths.path_graph\n')
COPY_FILES = [("pkg/graph.py", GRAPH), ("pkg/paths.py", PATHS), ("pkg/copy.py", COPY)]


def test_server_view_says_where_the_name_is():
    from finetune.data.server_samples import server_view

    index = _index(COPY_FILES)
    cases = {c.name: c for c in cross_file_lines(index, "pkg/copy.py")}
    assert set(cases) == {"Graph", "path_graph", "star_graph"}
    star = server_view(index, cases["star_graph"], total=512, count=approx_tokens)
    assert star.name_in_context and not star.name_in_file and star.copy_only
    assert "def star_graph(n)" in star.prompt("r") and "star_graph" not in star.prompt("r", with_context=False)
    graph = server_view(index, cases["Graph"], total=512, count=approx_tokens)
    assert graph.name_in_context and graph.name_in_file and not graph.copy_only
    # the same prompt as server_prompt's
    assert star.prompt("r") == server_prompt(index, cases["star_graph"], repo="r", total=512, count=approx_tokens)
    # no context gathered: the name is nowhere, so no copy
    bare = server_view(index, cases["star_graph"], total=512, count=approx_tokens, gather=False)
    assert not bare.name_in_context and not bare.copy_only
    # a budget with no room for context: the name is not in it either
    assert not server_view(index, cases["star_graph"], total=64, count=approx_tokens).copy_only


def test_copy_weight_draws_the_lines_only_the_context_can_answer():
    def middles(**kw):
        return sorted(m for _, m in server_samples(COPY_FILES, repo="r", count=approx_tokens, seed=3, **kw))

    star = "nodes = paths.star_graph(n)"
    others = ["G = Graph()", "first = paths.path_graph(n)", "return G, first, nodes, paths.path_graph"]
    assert middles(context_rate=1.0) == sorted(others + [star])
    assert middles(context_rate=1.0, copy_weight=1.0) == middles(context_rate=1.0)
    assert middles(context_rate=1.0, copy_weight=3) == sorted(others + [star] * 3)
    assert middles(context_rate=1.0, copy_weight=0) == sorted(others)
    # the default weight leaves the samples (prompts and with/without draws) as they were
    plain = server_samples(COPY_FILES, repo="r", count=approx_tokens, seed=5, context_rate=0.5)
    assert server_samples(COPY_FILES, repo="r", count=approx_tokens, seed=5, context_rate=0.5, copy_weight=1) == plain
    # each extra draw decides with/without context on its own: over many seeds both occur
    kinds = set()
    for seed in range(12):
        for p, m in server_samples(COPY_FILES, repo="r", count=approx_tokens, seed=seed, context_rate=0.5,
                                   copy_weight=2):
            if m == star:
                kinds.add("def star_graph" in p)
    assert kinds == {True, False}
    with pytest.raises(ValueError, match="copy_weight"):
        server_samples(COPY_FILES, repo="r", count=approx_tokens, seed=0, copy_weight=-1)


def test_draws_of_a_fractional_weight():
    import random

    from finetune.data.server_samples import draws

    rng = random.Random(0)
    state = rng.getstate()
    assert draws(rng, 3.0) == 3 and draws(rng, 1) == 1 and draws(rng, 0) == 0
    assert rng.getstate() == state  # a whole weight uses no random number
    got = [draws(rng, 1.25) for _ in range(4000)]
    assert set(got) == {1, 2} and 0.2 < sum(g == 2 for g in got) / len(got) < 0.3


def test_prepare_rejects_a_negative_copy_weight():
    from finetune.prepare import PrepareError, RepoDataConfig

    with pytest.raises(PrepareError, match="server_copy_weight"):
        RepoDataConfig(samples="server", server_copy_weight=-0.5)


def test_the_lora_server_preset_trains_sc2_tiny_on_one_thread():
    from finetune.config import load
    from finetune.train import LoraTrainConfig

    cfg = load(LoraTrainConfig, "lora-sc2-tiny-server")
    assert cfg.base == "sc2-tiny" and cfg.threads == 1 and cfg.loss_mask and cfg.save_every <= 25
    assert 0 < cfg.max_minutes <= 70 and cfg.r >= 16
