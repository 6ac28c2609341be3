"""Attribution over a real stdio LSP session (pytest-lsp) against the embedded model.

A small corpus (an MIT-licensed library) and the user's workspace are indexed into a temporary
attribution index; the server gets it through ``attributionIndex``. Covered: the inline item's
``command`` and ``workspace/executeCommand sc2lsp.suggestionAccepted``; ``sc2lsp/attribution``
with no params (the last accepted suggestion), with ``text`` (a re-indented copy), with
``uri`` + ``range``; the workspace never matching itself; no index configured.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from e2e_helpers import MODEL, OPTIONS, ROOT, SERVER, init_params, inline, items_of, open_doc, plain, status, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

#: A function of the corpus library (MIT); long enough (> 74 normalised characters) to be always found.
LIB_FUNC = '''\
def haversine_distance(lat1, lon1, lat2, lon2, radius=6371.0088):
    """Great-circle distance between two points on a sphere, in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = math.radians(lat2 - lat1)
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))
'''
MIT = """MIT License

Copyright (c) 2024 Geo Authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
"""
#: The user's own code (indexed too, as if the corpus held a copy of the workspace).
OWN_FUNC = '''\
def summarize_orders(orders, currency="EUR"):
    """Total and count of the paid orders in one currency, for the monthly report."""
    paid = [o for o in orders if o.status == "paid" and o.currency == currency]
    return {"count": len(paid), "total": round(sum(o.amount for o in paid), 2)}
'''
MAIN = '''import math


def bearing(lat1, lon1, lat2, lon2):
    """Initial bearing from point 1 to point 2, in degrees."""
    return '''


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from sc2lsp.attribution.build import build_index

    tmp = tmp_path_factory.mktemp("attr")
    lib = tmp / "geolib"
    (lib / "geolib").mkdir(parents=True)
    (lib / "LICENSE").write_text(MIT)
    (lib / "geolib" / "sphere.py").write_text("import math\n\n\n" + LIB_FUNC)
    ws = tmp / "workspace"
    ws.mkdir()
    (ws / "orders.py").write_text(OWN_FUNC)
    (ws / "main.py").write_text(MAIN)
    index = tmp / "index"
    build_index([lib, ws], index)
    return {"tmp": tmp, "lib": lib, "ws": ws, "index": index}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def client(lsp_client: LanguageClient, model_path, corpus):
    options = dict(OPTIONS, attributionIndex=[str(corpus["index"])], repoContext=False)
    result = await lsp_client.initialize_session(init_params(options, root=corpus["ws"]))
    lsp_client.init_result = result
    st = await wait_ready(lsp_client)
    assert st["state"] == "ready", st
    yield
    await lsp_client.shutdown_session()


async def attribution(client, params: dict) -> dict:
    return plain(await client.protocol.send_request_async("sc2lsp/attribution", params))


async def error_of(client, params: dict) -> Exception:
    with pytest.raises(Exception) as e:
        await attribution(client, params)
    return e.value


def reindent(code: str, prefix: str) -> str:
    return textwrap.indent(code.replace("    ", "  "), prefix)


async def test_01_nothing_accepted_yet_is_an_error(client):
    err = await error_of(client, {})
    assert "no suggestion accepted yet" in str(err)
    assert getattr(err, "code", None) == -32803


async def test_02_commands_are_advertised(client):
    cmds = client.init_result.capabilities.execute_command_provider.commands
    assert "sc2lsp.suggestionAccepted" in cmds and "sc2lsp.pullModel" in cmds


async def test_03_inline_item_command_then_attribution_of_the_accepted_text(client, corpus):
    uri = (corpus["ws"] / "main.py").as_uri()
    open_doc(client, uri, MAIN)
    line = MAIN.count("\n")
    col = len(MAIN.splitlines()[-1])
    items = items_of(await inline(client, uri, line, col))
    assert len(items) == 1, items
    item = items[0]
    assert item.insert_text
    cmd = item.command
    assert cmd.command == "sc2lsp.suggestionAccepted" and cmd.title
    a_uri, a_range, a_text = plain(cmd.arguments)
    assert a_uri == uri and a_text == item.insert_text
    assert a_range["start"] == {"line": line, "character": col}
    lines = item.insert_text.split("\n")
    end = ({"line": line, "character": col + len(lines[0])} if len(lines) == 1
           else {"line": line + len(lines) - 1, "character": len(lines[-1])})
    assert a_range["end"] == end

    # the editor accepts the suggestion and runs the item's command
    ran = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=cmd.command, arguments=cmd.arguments))
    assert ran is None
    res = await attribution(client, {})
    assert res["text"] == item.insert_text and res["uri"] == uri and res["range"] == a_range
    assert res["indexes"] == [str(corpus["index"])]
    assert isinstance(res["spans"], list)
    st = await status(client)
    assert st["server"]["attribution"] == {"indexes": [str(corpus["index"])], "from_setting": True,
                                           "last_accepted": uri}

    # an accepted suggestion that copies the corpus: its span, located in the document
    copied = reindent(LIB_FUNC, "    ")
    start = {"line": 20, "character": 4}
    n = copied.count("\n")
    rng = {"start": start, "end": {"line": 20 + n, "character": 0}}
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="sc2lsp.suggestionAccepted", arguments=[uri, rng, copied]))
    res = await attribution(client, {})
    assert res["text"] == copied and res["range"] == rng
    [span] = [s for s in res["spans"] if "haversine" in s["text"]]
    assert span["sources"][0]["path"] == "geolib/sphere.py"
    assert span["sources"][0]["license"] == "MIT"
    assert span["count"] == 1 and not span["common"] and not span["licenseText"]
    assert copied[span["start"]:span["end"]] == span["text"]
    assert span["range"]["start"] == {"line": 20, "character": 4 + span["start"]}  # first line: after the indent


async def test_04_text_reindented_copy_names_source_and_license(client, corpus):
    snippet = reindent(LIB_FUNC, "        ")
    res = await attribution(client, {"text": snippet})
    assert res["uri"] is None and res["range"] is None
    assert res["spans"], res
    span = max(res["spans"], key=lambda s: s["end"] - s["start"])
    assert span["end"] - span["start"] > 0.8 * len(snippet)
    src = span["sources"][0]
    assert (src["path"], src["license"], src["line"]) == ("geolib/sphere.py", "MIT", 4)
    assert span["range"] is None
    # with uri + range (an unsaved buffer the server never saw): ranges from range.start
    rng = {"start": {"line": 7, "character": 0}, "end": {"line": 7 + snippet.count("\n"), "character": 0}}
    res = await attribution(client, {"text": snippet, "uri": "untitled:Untitled-1", "range": rng})
    assert res["uri"] == "untitled:Untitled-1" and res["range"] == rng
    span = max(res["spans"], key=lambda s: s["end"] - s["start"])
    assert span["range"]["start"] == {"line": 7, "character": 8}
    assert span["range"]["end"]["line"] == 7 + LIB_FUNC.rstrip("\n").count("\n")


async def test_05_uri_and_range_give_document_ranges(client, corpus):
    uri = (corpus["ws"] / "copy.py").as_uri()
    head = "import math\n\n\nclass Geo:\n"
    body = reindent(LIB_FUNC, "    ")
    text = head + body + "\n\nprint('done')\n"
    open_doc(client, uri, text)
    first = head.count("\n")
    last = first + body.count("\n")
    res = await attribution(client, {"uri": uri, "range": {"start": {"line": first, "character": 0},
                                                           "end": {"line": last, "character": 0}}})
    assert res["uri"] == uri and res["text"] == body
    span = max(res["spans"], key=lambda s: s["end"] - s["start"])
    assert span["sources"][0]["path"] == "geolib/sphere.py"
    assert span["range"]["start"]["line"] == first and span["range"]["start"]["character"] == 4
    assert span["range"]["end"]["line"] in (last - 1, last)
    # the whole document (no range): the same span, same place
    whole = await attribution(client, {"uri": uri})
    assert whole["text"] == text
    assert max(whole["spans"], key=lambda s: s["end"] - s["start"])["range"]["start"] == span["range"]["start"]


async def test_06_the_workspace_never_matches_itself(client, corpus):
    from sc2lsp.attribution.query import AttributionIndex

    own = reindent(OWN_FUNC, "  ")
    # the index does hold it (checked without exclusion)...
    assert AttributionIndex.open(corpus["index"]).check(own)
    # ...but the server excludes the workspace folder
    res = await attribution(client, {"text": own})
    assert res["spans"] == []
    uri = (corpus["ws"] / "orders.py").as_uri()  # not open: read from disk
    res = await attribution(client, {"uri": uri})
    assert res["text"] == OWN_FUNC and res["spans"] == []


async def test_07_no_index_is_an_error_and_a_bad_index_too(client, corpus, tmp_path):
    def configure(**settings):
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"sc2lsp": settings}))

    snippet = reindent(LIB_FUNC, "")
    linked = ROOT / "models" / "sc2-tiny" / "attribution"
    try:
        # not set: the indexes models.toml links to the model (sc2-tiny's file: its stdlib index)
        configure(attributionIndex=[])
        st = await status(client)
        assert st["server"]["attribution"] == {"indexes": [str(linked)], "from_setting": False, "last_accepted":
                                               st["server"]["attribution"]["last_accepted"]}
        if not linked.exists():  # `make attribution-index` not run here: the error says how to get it
            err = await error_of(client, {"text": snippet})
            assert "no attribution index" in str(err) and "make attribution-index" in str(err)
            assert getattr(err, "code", None) == -32803
        else:
            assert (await attribution(client, {"text": snippet}))["indexes"] == [str(linked)]

        # a model models.toml does not know, and no setting: no index at all
        other = tmp_path / "other.gguf"
        other.write_bytes(Path(MODEL).read_bytes())
        configure(attributionIndex=[], model=str(other))
        assert (await wait_ready(client))["state"] == "ready"
        err = await error_of(client, {"text": snippet})
        assert str(err).endswith("no attribution index: set sc2lsp.attributionIndex or build one with "
                                 "`sc2lsp attribution build`")
        assert getattr(err, "code", None) == -32803

        broken = tmp_path / "broken"
        broken.mkdir()
        for f in Path(corpus["index"]).iterdir():
            (broken / f.name).write_bytes(f.read_bytes()[: max(10, f.stat().st_size // 2)] if f.suffix == ".sc2a"
                                          else f.read_bytes())
        configure(attributionIndex=[str(broken)])
        err = await error_of(client, {"text": snippet})
        assert str(broken) in str(err) and getattr(err, "code", None) == -32803
        configure(attributionIndex=[str(tmp_path / "nothing-here")])
        err = await error_of(client, {"text": snippet})
        assert "nothing-here" in str(err)
    finally:
        configure(attributionIndex=[str(corpus["index"])], model=MODEL)
    assert (await wait_ready(client))["state"] == "ready"
    res = await attribution(client, {"text": snippet})  # and the server keeps serving
    assert res["spans"]
