"""Token healing before/after: what the engine suggests at cursors that end mid-token.

Each case runs through the real engine (budget, SPM prompt, llama.cpp, post-processing) with
``token_healing`` off and on, on the same model, and prints the suggestion (first line) and the
raw generation, with the number of prompt tokens taken back.

    .venv/bin/python bench/healing.py [--model sc2-tiny] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # before bench/ itself: bench/finetune.py would shadow the package
    sys.path.insert(0, str(ROOT))

from sc2lsp.config import Settings  # noqa: E402
from sc2lsp.engine import Cursor, Engine  # noqa: E402

#: (name, document text with the cursor at "|")
CASES = [
    ("from collections import ", "import os\nfrom collections import |\n\n\ndef main():\n    pass\n"),
    ("import ", "\"\"\"Helpers.\"\"\"\nimport |\n\n\ndef main():\n    pass\n"),
    ("self.na", "class Person:\n    def __init__(self, name):\n        self.name = name\n\n    def greet(self):\n        return 'hi ' + self.na|\n"),
    ("return sel", "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def copy(self):\n        return sel|\n"),
    ("def __in", "class Point:\n    def __in|\n"),
    ("os.path.jo", "import os\n\n\ndef where(base, name):\n    return os.path.jo|\n"),
]


def run(model: str, healing: bool) -> list[dict]:
    e = Engine(Settings(model=model, threads=1, token_healing=healing, repo_context=False,
                        max_prompt_ms=600_000, max_predict_ms=600_000, max_tokens=24))
    e.start().result(timeout=300)
    out = []
    try:
        for name, doc in CASES:
            off = doc.index("|")
            text = doc[:off] + doc[off + 1:]
            s = e.complete(Cursor(f"file:///demo/{len(out)}.py", text, off, "python", f"demo{len(out)}.py")).future.result(timeout=600)
            out.append({"case": name, "healing": healing, "suggestion": s.text, "raw": s.raw,
                        "healed_tokens": s.timings.get("healed_tokens", 0),
                        "prompt_tokens_evaluated": s.timings.get("prompt_tokens_evaluated")})
    finally:
        e.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "sc2-tiny" / "sc2-tiny-q8_0.gguf"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    off, on = run(args.model, False), run(args.model, True)
    print("| cursor after | healing off | healing on (tokens taken back) |")
    print("|---|---|---|")
    for a, b in zip(off, on):
        show = lambda r: "`" + r["suggestion"].split("\n", 1)[0].replace("|", "\\|") + "`" if r["suggestion"] else "(nothing)"  # noqa: E731
        print(f"| `{a['case']}` | {show(a)} | {show(b)} ({b['healed_tokens']}) |")
    result = {"model": args.model, "off": off, "on": on}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
