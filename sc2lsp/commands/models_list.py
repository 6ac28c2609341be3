"""``sc2lsp models list [--json]``: the known models (models.toml merged with the user's) and
whether each quantization is present locally."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..models.registry import describe, format_size, load_registry, short_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    reg = load_registry()
    rows = describe(reg)
    if args.json:
        print(json.dumps({"default": reg.default, "sources": [str(s) for s in reg.sources], "models": rows}, indent=1))
        return 0
    table = [("MODEL", "QUANT", "SIZE", "STATUS", "WHERE")]
    for m in rows:
        entry = reg.models[m["name"]]
        if entry.remote is not None:
            r = entry.remote
            table.append((m["name"] + (" *" if m["default"] else ""), "-", "-", "remote",
                          f"{r.endpoint} ({r.api}{', model ' + r.model if r.model else ''})"))
        for q in m["quants"]:
            quant = entry.quants[q["quant"]]
            if q["present"]:
                status, where = "present", short_path(Path(q["path"]))
            elif q["problem"]:
                status, where = "incomplete", f"{q['problem']}; `{entry.pull_command(quant)}`"
            elif quant.path is not None:
                status, where = "missing", short_path(quant.path)
            else:
                status, where = "absent", f"{entry.repo}/{quant.file}  (`{entry.pull_command(quant)}`)"
            if entry.lora is not None:
                where += f"  + adapter {short_path(entry.lora)}" + ("" if entry.lora.is_file() else " (missing)")
            table.append((
                m["name"] + (" *" if m["default"] else ""),
                q["quant"] + (" *" if q["default"] else ""),
                format_size(quant, q["size"]),
                status,
                where,
            ))
        if entry.base is None and (m.get("hf_repo") or m.get("hf_checkpoint")):  # the checkpoint to fine-tune
            there = m["checkpoint_present"]
            table.append((m["name"], "checkpoint", "-", "present" if there else "absent",
                          (short_path(Path(m["hf_checkpoint"])) if m.get("hf_checkpoint") else m["hf_repo"])
                          + ("" if there else f"  (`sc2lsp models pull {m['name']} --checkpoint`)")))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    print(f"\n* default model / quant. Registry: {', '.join(map(str, reg.sources))}")
    return 0
