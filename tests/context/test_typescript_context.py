"""TypeScript projects (issue 14 item 2, msal-browser's misses): the definition a line needs
reaches a small context budget. The project is ``ts_project/`` next to this file; each case takes
the line out (the cursor at its indentation, the lines below kept), as ``bench/retrieval.py`` does."""

from __future__ import annotations

from pathlib import Path

from sc2lsp.context import render
from sc2lsp.context.gather import assemble, complete_options, make_request, prepare
from sc2lsp.context.index import RepoIndex
from sc2lsp.context.names import _Resolver

PROJECT = Path(__file__).parent / "ts_project"


def project_index() -> RepoIndex:
    idx = RepoIndex()
    for f in sorted(PROJECT.rglob("*.ts")):
        idx.apply_change(f.relative_to(PROJECT).as_posix(), f.read_text())
    return idx


def take_out(idx: RepoIndex, path: str, line_text: str) -> tuple[str, int]:
    """The file with the line holding ``line_text`` emptied up to its indentation, and the cursor there."""
    lines = idx.get(path).text.split("\n")
    ln = next(i for i, s in enumerate(lines) if line_text in s)
    indent = lines[ln][: len(lines[ln]) - len(lines[ln].lstrip())]
    prefix = "\n".join(lines[:ln] + [indent])
    return prefix + "\n" + "\n".join(lines[ln + 1:]), len(prefix)


def defines(blocks, path: str, name: str, idx: RepoIndex) -> bool:
    line = next(d.start_line for d in idx.get(path).definitions if d.name == name)
    return any(b.path == path and a <= line <= z for b in blocks for a, z in b.lines)


def context(idx: RepoIndex, path: str, text: str, offset: int, budget: int):
    idx.apply_change(path, text)
    return assemble(idx, path, text, offset, budget, options=complete_options()).blocks


def test_a_module_of_string_constants_does_not_crowd_out_the_class_the_line_needs():
    # ``throw new InvalidArgumentError(...)``: the lines around use a dozen ``Events.X`` constants
    # (``export const X = "x"``: the use says all the definition does); the error class is used
    # once more further down
    idx = project_index()
    path = "src/state/SelectionState.ts"
    text, offset = take_out(idx, path, 'throw new InvalidArgumentError("method"')
    blocks = context(idx, path, text, offset, 160)
    assert defines(blocks, "src/errors/InvalidArgumentError.ts", "InvalidArgumentError", idx), blocks
    # the constants still come when there is room
    blocks = context(idx, path, text, offset, 1200)
    assert any(b.path == "src/telemetry/Events.ts" for b in blocks), blocks


def test_an_import_is_not_shadowed_by_what_a_parser_took_for_a_member_of_the_same_name():
    # ``): Promise<ChallengeResult> {`` taken out: the parser recovers by reading
    # ``return new ChallengeResult(`` below as a method named ChallengeResult
    idx = project_index()
    path = "src/state/ChallengeState.ts"
    text, offset = take_out(idx, path, "): Promise<ChallengeResult> {")
    idx.apply_change(path, text)
    req = make_request(idx, path, text, offset)
    found, how = _Resolver(req).resolve("ChallengeResult", None)
    assert [(d.path, d.name) for d in found] == [("src/result/FlowResult.ts", "ChallengeResult")], how
    blocks = context(idx, path, text, offset, 200)
    assert defines(blocks, "src/result/FlowResult.ts", "ChallengeResult", idx), blocks


def test_generic_class_headers_are_brief():
    idx = project_index()
    entry = idx.get("src/result/FlowResult.ts")
    brief = {d.name: render.brief(entry, d).text for d in entry.definitions}
    assert brief["FlowStateBase"] == "export abstract class FlowStateBase<TParameters> { /* ... */ }"
    assert brief["FlowResult"] == "export class FlowResult<TState, TError, TData> extends Map { /* ... */ }"
    assert brief["ChallengeResult"] == "export class ChallengeResult extends FlowResult { /* ... */ }"
    # the longer forms keep the generics
    d = next(d for d in entry.definitions if d.name == "ChallengeResult")
    assert "FlowResult<FlowStateBase<FlowStateParameters>, CustomAuthError, string>" in render.elided(entry, d).text
    assert render.bare_type_arguments("class A<T = () => void, U extends Map<K, V[]>> implements B<U>, C {") \
        == "class A<T, U> implements B, C {"


def test_imports_used_only_far_from_the_cursor_of_a_long_file_are_not_taken_for_unused_ones():
    # 20 imported classes used once, at the top of a 150,000-character file; the cursor at its end,
    # two lines below a use of ``Needed``: those 20 are not "imported, about to be used"
    lib = "".join(f"export class Helper{i} {{\n    run(): void {{}}\n}}\n" for i in range(20))
    lib += "export class Needed {\n    constructor(public readonly size: number) {}\n}\n"
    names = ", ".join(f"Helper{i}" for i in range(20))
    top = f'import {{ {names}, Needed }} from "./lib.js";\n\n' + "".join(f"new Helper{i}().run();\n" for i in range(20))
    filler = "".join(f"export const value{i} = {i} * 2 + {i} - {i} / 3 + {i} % 7 + {i};\n" for i in range(2500))
    tail = "export function make(): number {\n    const a = new Needed(1);\n    \n    return a.size;\n}\n"
    main = top + filler + tail
    assert len(main) > 140_000
    idx = RepoIndex()
    idx.apply_change("lib.ts", lib)
    idx.apply_change("main.ts", main)
    prepare(idx, "main.ts")  # (didOpen: where each name of the file is used, the whole text)
    offset = main.index("    \n    return a.size") + 4
    blocks = context(idx, "main.ts", main, offset, 120)
    assert defines(blocks, "lib.ts", "Needed", idx), blocks
