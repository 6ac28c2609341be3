"""``sc2lsp serve`` with its model on llama.cpp's ``llama-server`` (api ``llama-server``): the same
suggestions as the local model, a keystroke evaluates only the new tokens in the editor's slot,
and the server's own figures in ``sc2lsp/status``. Skipped (saying how to build it) without the
llama-server binary of ``bench/build_llama_server.sh``."""

from __future__ import annotations

from e2e_helpers import GEOMETRY, MODEL, OPTIONS, SERVER
from remote_helpers import NEEDS_LLAMA_SERVER, llama_server_ref
from sc2lsp.lsp.rawclient import StdioClient

pytestmark = NEEDS_LLAMA_SERVER

TEXT = GEOMETRY.read_text()
URI = GEOMETRY.as_uri()
SPOTS = [(13, 15), (14, 0), (4, 0)]  # "        return ", the line after, a blank line


def suggestions(options: dict) -> tuple[list[str], dict, StdioClient]:
    c = StdioClient(SERVER)
    c.initialize(GEOMETRY.parent, dict(options, repoContext=False, tokenHealing=False))
    st = c.wait_ready(timeout=120)
    assert st["state"] == "ready", st
    c.open(URI, TEXT)
    out = []
    for line, col in SPOTS:
        items = c.inline(URI, line, col, timeout=120)
        out.append(items[0]["insertText"] if items else "")
    return out, c.status(), c


def test_llama_server_backend_over_lsp():
    local, _, lc = suggestions(dict(OPTIONS))
    lc.close()
    with llama_server_ref.LlamaServer(MODEL, threads=1, n_ctx=2048, slots=2, alias="sc2-tiny",
                                      same_batches=True) as srv:
        remote, st, c = suggestions(dict(OPTIONS, model="sc2-tiny", endpoint=srv.url, api="llama-server"))
        try:
            assert remote == local and any(remote), (remote, local)
            r = st["remote"]
            assert r["api"] == "llama-server" and r["state"] == "ok" and r["id_slot"] in (0, 1)
            assert r["server"]["id_slot"] == r["id_slot"] and r["server"]["tokens_cached"] > 0
            assert st["n_ctx"] == 2048  # the slot's context, from /props
            # a keystroke after the suggestion point: the slot's cache serves the prompt
            line, col = SPOTS[0]
            c.change(URI, 2, "x", (line, col))
            c.inline(URI, line, col + 1, timeout=120)
            last = c.status()["last"]
            assert last["source"] == "model" and last["prompt_tokens_evaluated"] <= 3, last
        finally:
            c.close()
