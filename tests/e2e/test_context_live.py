"""Repository context over a real stdio session stays live: files written, rewritten and deleted on
disk by something other than the editor (git checkout, codegen) reach the next completion's prompt
without a restart, through the server's watchdog watcher."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from e2e_helpers import OPTIONS, SERVER, edit, init_params, inline, open_doc, plain, status, wait_ready

pytestmark = pytest.mark.slow

VECTORS_V1 = 'def scale_vector(v, k):\n    """Multiply each coordinate by k."""\n    return [x * k for x in v]\n'
VECTORS_V2 = ('def scale_vector(v, k, clamp_to=None):\n    """Multiply each coordinate by k, clamped."""\n'
              '    return [min(x * k, clamp_to) if clamp_to else x * k for x in v]\n')
MATRIX = 'def transpose_matrix(rows):\n    """Rows become columns."""\n    return [list(c) for c in zip(*rows)]\n'
MAIN = ("from shapes.vectors import scale_vector\n\n\n"
        "def grow(v):\n    return scale_vector(v, 2)\n\n\n"
        "def shrink(v):\n    return scale_vector(\n")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def prompt_at(client, uri: str, line: int, col: int) -> str:
    await inline(client, uri, line, col)
    st = plain(await client.protocol.send_request_async("sc2lsp/status", {"prompt": True}))
    return st["last_prompt"]


def context_of(prompt: str) -> str:
    """The repository context: everything before the current file's FIM part."""
    return prompt[: prompt.index("<fim_prefix>")]


async def wait_for_prompt(client, uri: str, spots, want, timeout: float = 20.0) -> str:
    """Ask for completions, alternating between cursor lines (context is sticky per line and
    gathered again on a line change), until ``want(context)`` holds."""
    seen = ""
    for i in range(int(timeout / 0.1)):
        line, col = spots[i % len(spots)]
        seen = context_of(await prompt_at(client, uri, line, col))
        if want(seen):
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"the prompt's context never showed the change; last context:\n{seen}")


async def test_disk_changes_reach_the_next_prompt_without_a_restart(client, tmp_path):
    root = tmp_path / "proj"
    (root / "shapes").mkdir(parents=True)
    vectors = root / "shapes" / "vectors.py"
    vectors.write_text(VECTORS_V1)
    main = root / "main.py"
    main.write_text(MAIN)
    await client.initialize_session(init_params(dict(OPTIONS), root=root))
    assert (await wait_ready(client))["state"] == "ready"
    uri = main.as_uri()
    open_doc(client, uri, MAIN)
    for _ in range(200):  # indexed in the background
        ws = (await status(client))["server"]["workspaces"]
        if ws and ws[0]["indexed"]:
            break
        await asyncio.sleep(0.05)
    spots = [(8, len("    return scale_vector(")), (4, len("    return scale_vector(v, 2)"))]

    # the cross-file definition is in the prompt, before the current file
    ctx = await wait_for_prompt(client, uri, spots, lambda c: "def scale_vector(v, k):" in c)
    assert "<file_sep>shapes/vectors.py\n" in ctx

    # 1. the definition is rewritten on disk (not in the editor): the new signature replaces the old
    vectors.write_text(VECTORS_V2)
    ctx = await wait_for_prompt(client, uri, spots, lambda c: "def scale_vector(v, k, clamp_to=None):" in c)
    assert "def scale_vector(v, k):" not in ctx

    # 2. a module created on disk, imported by an edit in the editor: its definition comes in
    (root / "shapes" / "matrix.py").write_text(MATRIX)
    edit(client, uri, 2, "from shapes.matrix import transpose_matrix\n", (1, 0))
    spots = [(9, len("    return scale_vector(")), (5, len("    return scale_vector(v, 2)"))]
    ctx = await wait_for_prompt(client, uri, spots, lambda c: "def transpose_matrix(rows):" in c)
    assert "<file_sep>shapes/matrix.py\n" in ctx

    # 3. deleted on disk: it leaves the context
    vectors.unlink()
    ctx = await wait_for_prompt(client, uri, spots, lambda c: "scale_vector(v, k" not in c)
    assert "shapes/vectors.py" not in ctx and "def transpose_matrix(rows):" in ctx
