"""``sc2lsp serve``: the language server (pygls 2), stdio by default or ``--tcp HOST:PORT``.

Features: ``textDocument/inlineCompletion`` (registered with ``InlineCompletionOptions()``, which
is what makes pygls advertise it), a ``textDocument/completion`` fallback holding the suggestion
as one item (by default only for clients without inline completion), incremental document sync
with positions in the negotiated encoding (UTF-16 by default), workspace folders,
``$/cancelRequest``, ``workspace/didChangeConfiguration`` and the custom requests ``sc2lsp/status``
and ``sc2lsp/attribution`` (is a text, a range of a document or the last accepted suggestion a
copy of something in the attribution indexes?). ``workspace/executeCommand`` runs
``sc2lsp.suggestionAccepted`` (each inline item carries it as its ``command``, so the editor
reports what was accepted) and ``sc2lsp.pullModel`` (download with ``$/progress``, then load).
``textDocument/documentHighlight`` answers nothing: editors send it when the cursor moves, and the
server warms the prompt at a cursor that stays put (``warmDelayMs``).

This package is the only one that knows LSP: requests become ``engine.Cursor`` values and
``engine.Suggestion`` values become protocol items here. The model runs on the engine's worker
thread; handlers are coroutines on the event loop that await its futures, so a
``$/cancelRequest`` or a newer request never waits for the model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from .. import __version__
from ..attribution.provider import AttributionProvider
from ..config import Settings, parse_settings, settings_doc
from ..errors import UserError
from ..engine import Cursor, Engine, Suggestion
from ..workspace.policy import FilePolicy, Verdict
from .documents import Document, Documents, read_document, uri_to_path
from .progress import WorkDoneProgress
from .protocol import Sc2Protocol, is_parse_error

log = logging.getLogger("sc2lsp.lsp")

STATUS = "sc2lsp/status"
ATTRIBUTION = "sc2lsp/attribution"
CMD_ACCEPTED = "sc2lsp.suggestionAccepted"
CMD_PULL = "sc2lsp.pullModel"
PULL_HINT = "(VS Code: 'sc2lsp: Pull model')"
_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16", "utf-32": "utf-32"}
_tokens = itertools.count(1)


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed (-32803): the request was valid but could not be carried out."""

    CODE = types.LSPErrorCodes.RequestFailed.value
    MESSAGE = "Request Failed"

    def __init__(self, message: str):
        super().__init__(message=message, code=self.CODE)


def _field(obj: Any, key: str) -> Any:
    """``obj[key]`` or ``obj.key``: pygls hands untyped params over as dicts or namedtuple-like objects."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _position(obj: Any, what: str) -> tuple[int, int]:
    line, char = _field(obj, "line"), _field(obj, "character")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (line, char)):
        raise JsonRpcInvalidParams(f"{what} must be {{line, character}} with non-negative integers")
    return line, char


def _range(obj: Any, what: str = "range") -> tuple[tuple[int, int], tuple[int, int]]:
    if obj is None or (not isinstance(obj, dict) and _field(obj, "start") is None):
        raise JsonRpcInvalidParams(f"{what} must be {{start, end}}")
    return _position(_field(obj, "start"), f"{what}.start"), _position(_field(obj, "end"), f"{what}.end")


def _lsp_range(start: tuple[int, int], end: tuple[int, int]) -> dict:
    return {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}}


def _advance(start: tuple[int, int], text: str, encoding: str) -> tuple[int, int]:
    """The position after ``text`` inserted at ``start`` (LSP line breaks: \\n, \\r\\n, \\r)."""
    doc = Document("", text)
    line, char = doc.position_at(len(text), encoding)
    return (start[0] + line, char if line else start[1] + char)


class Sc2Server(LanguageServer):
    def __init__(self, base: Settings | None = None, engine_factory=Engine):
        super().__init__("sc2lsp", __version__, protocol_cls=Sc2Protocol)
        self.base_settings = base or Settings()
        self.settings = self.base_settings
        self.docs = Documents()
        self.engine: Engine = engine_factory(self.settings, notify=self._notify, context_fn=self.repo_context)
        self._workspaces: dict[Path, Any] = {}  # folder root -> sc2lsp.workspace.service.WorkspaceContext
        self._dirty: set[str] = set()  # documents changed since the index last saw them
        self._warm_handles: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_messages: list[tuple[str, str]] = []
        self._initialized = False
        self.last_cursor: dict[str, int] = {}
        self.attribution = AttributionProvider()
        #: the last suggestion the editor reported accepted: {"uri", "range", "text"}
        self.last_accepted: dict | None = None
        self._pulling = False
        self.policy = FilePolicy()  #: the file-access policy over the workspace folders
        self._policy_roots: tuple = ()

    # ---------------------------------------------------------------- messages to the user

    def _notify(self, level: str, message: str) -> None:
        """Show a message; safe from any thread (the engine reports from its worker)."""
        if "sc2lsp models pull" in message and PULL_HINT not in message:
            message = f"{message} {PULL_HINT}"
        if not self._initialized or self._loop is None:
            self._pending_messages.append((level, message))
            return
        self._loop.call_soon_threadsafe(self._show, level, message)

    def _show(self, level: str, message: str) -> None:
        kind = {"error": types.MessageType.Error, "warning": types.MessageType.Warning}.get(level, types.MessageType.Info)
        log.log(logging.ERROR if level == "error" else logging.WARNING, "%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def report_server_error(self, error: Exception, source: Any) -> None:
        if is_parse_error(error):
            self.protocol.report_parse_error(error)
            return
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)

    # ---------------------------------------------------------------- settings

    def apply_settings(self, raw: Any) -> None:
        settings, problems = parse_settings(raw, self.settings)
        for p in problems:
            self._notify("warning", f"sc2lsp: {p}")
        self.settings = settings
        self.engine.configure(settings)

    # ---------------------------------------------------------------- documents

    @property
    def encoding(self) -> str:
        enc = self.protocol._workspace.position_encoding if self.protocol._workspace else "utf-16"
        return _ENCODINGS.get(str(getattr(enc, "value", enc)), "utf-16")

    # ---------------------------------------------------------------- repository context

    def _folder_root(self, uri: str) -> Path | None:
        path = uri_to_path(uri)
        ws = self.protocol._workspace
        if path is None or ws is None:
            return None
        roots = [uri_to_path(f.uri) for f in ws.folders.values()]
        if not roots and ws.root_path:
            roots = [Path(ws.root_path)]
        for root in sorted((r for r in roots if r is not None), key=lambda r: -len(str(r))):
            if path.is_relative_to(root):
                return root
        return None

    def workspace_for(self, uri: str, create: bool = True):
        """The repository index of the workspace folder holding ``uri`` (started on first use)."""
        if not self.settings.repo_context:
            return None
        root = self._folder_root(uri)
        if root is None or not root.is_dir() or root in (Path(root.anchor), Path.home()):
            return None  # a whole disk or home directory is not a project: never index it
        ws = self._workspaces.get(root)
        if ws is None and create:
            from ..workspace.service import WorkspaceContext

            ws = self._workspaces[root] = WorkspaceContext(root).start()
            for doc in list(self.docs._docs.values()):  # documents opened before the index existed
                if self._folder_root(doc.uri) == root and doc.completable is None:
                    ws.did_open(doc.uri, doc.text, doc.language_id)
        return ws

    def repo_context(self, cur: Cursor, plan, count) -> list | None:
        """The engine's ``context_fn``: context blocks from the workspace index (None: still indexing)."""
        ws = self.workspace_for(cur.uri)
        if ws is None:
            return []
        if not ws.ready.is_set():
            return None
        for uri in list(self._dirty):  # bring the index up to date with the editor's text
            doc = self.docs.get(uri)
            target = self.workspace_for(uri, create=False)
            if doc is not None and target is not None and doc.completable is None:
                target.did_change(uri, doc.text, doc.language_id)
        self._dirty.clear()
        blocks = ws.blocks(cur.uri, cur.text, cur.offset, plan, count=count, language_id=cur.language)
        return [b.source_file() for b in blocks]

    def verdict(self, uri: str) -> Verdict:
        """The file-access policy's verdict on ``uri`` for the current workspace folders."""
        roots = tuple(self.workspace_roots())
        if roots != self._policy_roots:
            self.policy.set_roots(roots)
            self._policy_roots = roots
        return self.policy.judge(uri)

    def read_allowed(self, uri: str) -> tuple[Document | None, str | None]:
        """A document that is not open, read from disk only when the policy allows it."""
        v = self.verdict(uri)
        if not v.readable:
            why = v.reason or "outside every workspace folder"
            return None, f"{uri} is not open and the server does not read it ({why})"
        return read_document(uri)

    def stop_workspaces(self) -> None:
        for ws in self._workspaces.values():
            ws.stop()
        self._workspaces.clear()

    # ---------------------------------------------------------------- document sync

    def did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        td = params.text_document
        doc = self.docs.open(td.uri, td.text, td.version, td.language_id)
        doc.excluded = self.verdict(td.uri).reason
        ws = self.workspace_for(td.uri, create=bool(self._initialized))
        if ws is not None and doc.completable is None:
            ws.did_open(td.uri, td.text, td.language_id)
        self._schedule_warm(doc, self.last_cursor.get(td.uri, 0), delay=0.0)

    def did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        doc = self.docs.get(params.text_document.uri)
        if doc is None:
            log.warning("didChange for a document that is not open: %s", params.text_document.uri)
            return
        end = None
        for change in params.content_changes:
            rng = getattr(change, "range", None)
            if rng is None:
                end = doc.apply_change(change.text)
            else:
                end = doc.apply_change(change.text, (rng.start.line, rng.start.character),
                                       (rng.end.line, rng.end.character), self.encoding)
        doc.version = params.text_document.version
        self._dirty.add(doc.uri)
        if end is not None:
            self._schedule_warm(doc, end, delay=self.settings.warm_delay_ms / 1000)

    def did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ws = self.workspace_for(uri, create=False)
        if ws is not None:
            ws.did_close(uri)
        self._dirty.discard(uri)
        self.docs.close(uri)
        handle = self._warm_handles.pop(params.text_document.uri, None)
        if handle is not None:
            handle.cancel()

    def cursor_moved(self, uri: str, position: types.Position) -> None:
        """The cursor rests at ``position``: warm its prompt once it has stayed there a moment."""
        doc = self.docs.get(uri)
        if doc is None:
            return
        offset = doc.offset_at(position.line, position.character, self.encoding)
        if offset is not None:
            self.last_cursor[uri] = offset
            self._schedule_warm(doc, offset, delay=self.settings.warm_delay_ms / 1000)

    def _schedule_warm(self, doc: Document, offset: int, delay: float) -> None:
        """Warm the prompt at ``offset`` once the document has been still for ``delay`` seconds."""
        if not self.settings.warm_up or doc.completable is not None or self._loop is None:
            return
        old = self._warm_handles.pop(doc.uri, None)
        if old is not None:
            old.cancel()
        version = doc.version

        def fire() -> None:
            self._warm_handles.pop(doc.uri, None)
            if self.docs.get(doc.uri) is doc and doc.version == version:
                self.engine.warm(self._cursor(doc, min(offset, len(doc.text))))

        self._warm_handles[doc.uri] = self._loop.call_later(delay, fire)

    def _cursor(self, doc: Document, offset: int) -> Cursor:
        path, repo = self._relative_path(doc.uri)
        return Cursor(doc.uri, doc.text, offset, doc.language_id, path, repo)

    def _relative_path(self, uri: str) -> tuple[str | None, str | None]:
        """The document's path relative to its workspace folder, and that folder's name."""
        path = uri_to_path(uri)
        if path is None:
            return None, None
        ws = self.protocol._workspace
        folders = list(ws.folders.values()) if ws is not None else []
        for folder in sorted(folders, key=lambda f: -len(f.uri)):
            root = uri_to_path(folder.uri)
            if root is not None and path.is_relative_to(root):
                return path.relative_to(root).as_posix(), folder.name or root.name
        if ws is not None and ws.root_path and path.is_relative_to(ws.root_path):
            return path.relative_to(ws.root_path).as_posix(), Path(ws.root_path).name
        return path.name, None

    def document_cursor(self, uri: str, position: types.Position) -> tuple[Cursor | None, str]:
        """The engine's cursor for a request, or (None, why there is no completion)."""
        doc = self.docs.get(uri)
        if doc is None:
            doc, why = self.read_allowed(uri)
            if doc is None:
                return None, why or "unknown document"
        why = doc.completable
        if why is not None:
            return None, f"{uri}: {why}"
        offset = doc.offset_at(position.line, position.character, self.encoding)
        if offset is None:
            return None, f"position {position.line}:{position.character} is outside {uri}"
        self.last_cursor[uri] = offset
        return self._cursor(doc, offset), ""

    async def suggest(self, uri: str, position: types.Position) -> Suggestion | None:
        cur, why = self.document_cursor(uri, position)
        if cur is None:
            log.info("no completion: %s", why)
            return None
        handle = self._warm_handles.pop(uri, None)
        if handle is not None:
            handle.cancel()
        ticket = self.engine.complete(cur)
        try:
            return await asyncio.wrap_future(ticket.future)
        except asyncio.CancelledError:  # $/cancelRequest
            ticket.cancel()
            raise

    # ---------------------------------------------------------------- attribution

    def workspace_roots(self) -> list[Path]:
        """The workspace folders (or the root path): the user's own code, never an attribution match."""
        ws = self.protocol._workspace
        if ws is None:
            return []
        roots = [uri_to_path(f.uri) for f in ws.folders.values()]
        if not roots and ws.root_path:
            roots = [Path(ws.root_path)]
        return [r for r in roots if r is not None]

    def accept(self, args: list) -> None:
        """``sc2lsp.suggestionAccepted [uri, range, text]``: remember the accepted suggestion."""
        if not isinstance(args, (list, tuple)) or len(args) != 3:
            raise JsonRpcInvalidParams(f"{CMD_ACCEPTED} takes [uri, range, insertedText]")
        uri, rng, text = args
        if not isinstance(uri, str) or not isinstance(text, str):
            raise JsonRpcInvalidParams(f"{CMD_ACCEPTED}: uri and insertedText must be strings")
        start, end = _range(rng, "range")
        self.last_accepted = {"uri": uri, "range": _lsp_range(start, end), "text": text}

    def attribution_target(self, params: Any):
        """(text, uri, range, offset -> document position or None) of an ``sc2lsp/attribution`` request."""
        text, uri, rng = _field(params, "text"), _field(params, "uri"), _field(params, "range")
        if text is not None and not isinstance(text, str):
            raise JsonRpcInvalidParams("text must be a string")
        if uri is not None and not isinstance(uri, str):
            raise JsonRpcInvalidParams("uri must be a string")
        enc = self.encoding
        if text is None and uri is None:
            if self.last_accepted is None:
                raise RequestFailed("no suggestion accepted yet")
            acc = self.last_accepted
            start = _position(acc["range"]["start"], "range.start")
            return acc["text"], acc["uri"], acc["range"], lambda k, t=acc["text"]: _advance(start, t[:k], enc)
        if text is not None and rng is not None:  # a text that sits at range.start (of uri, if given)
            start, end = _range(rng)
            return text, uri, _lsp_range(start, end), lambda k: _advance(start, text[:k], enc)
        if uri is None:
            return text, None, None, None
        doc = self.docs.get(uri)
        if doc is None:
            doc, why = self.read_allowed(uri)
            if doc is None:
                raise RequestFailed(why or f"unknown document {uri}")
        if doc.excluded is not None:  # a secret or ignored file is never attribution input
            return "", uri, None, None
        if text is not None:  # a text in that document: where it first occurs
            at = doc.text.find(text) if text else -1
            if at < 0:
                return text, uri, None, None
            return text, uri, _lsp_range(doc.position_at(at, enc), doc.position_at(at + len(text), enc)), \
                lambda k: doc.position_at(at + k, enc)
        if rng is None:
            a, b = 0, len(doc.text)
        else:
            (l1, c1), (l2, c2) = _range(rng)
            a, b = doc.offset_at(l1, c1, enc), doc.offset_at(l2, c2, enc)
            if a is None or b is None:
                raise RequestFailed(f"range {l1}:{c1}-{l2}:{c2} is outside {uri} ({len(doc.line_starts())} lines)")
            a, b = min(a, b), max(a, b)
        whole = _lsp_range(doc.position_at(a, enc), doc.position_at(b, enc))
        return doc.text[a:b], uri, whole, lambda k: doc.position_at(a + k, enc)

    async def attribution_check(self, params: Any) -> dict:
        text, uri, rng, position = self.attribution_target(params)
        if not text:
            return {"text": text, "uri": uri, "range": rng, "indexes": [], "spans": []}
        configured, model, roots = self.settings.attribution_index, self.settings.model, self.workspace_roots()

        def work():
            paths = self.attribution.indexes(configured, model)
            return self.attribution.check(text, paths, exclude=roots, linked_from=None if configured else model)

        try:
            found = await asyncio.to_thread(work)
        except UserError as e:
            raise RequestFailed(str(e)) from None
        except Exception as e:  # a damaged index that passed the header checks, a bug: one error, keep serving
            log.exception("attribution check failed")
            raise RequestFailed(f"attribution check failed: {type(e).__name__}: {e}") from None
        spans = [dict(sp) for sp in found.spans]
        if position is not None:
            for sp in spans:
                sp["range"] = _lsp_range(position(sp["start"]), position(sp["end"]))
        return {"text": text, "uri": uri, "range": rng, "indexes": list(found.indexes), "spans": spans}

    # ---------------------------------------------------------------- pulling a model

    async def pull_model(self, args: list) -> dict:
        """``sc2lsp.pullModel [name]``: download with ``$/progress``, then load it as the model."""
        from ..models.pull import pull
        from ..models.registry import load_registry, looks_like_path

        name = args[0] if args else None
        if name is None:
            name = self.settings.model if not looks_like_path(self.settings.model) else None
            if name is None:
                try:
                    name = (await asyncio.to_thread(load_registry)).default
                except UserError as e:
                    raise RequestFailed(str(e)) from None
        if not isinstance(name, str) or not name.strip() or looks_like_path(name):
            raise JsonRpcInvalidParams(f"{CMD_PULL} takes [modelName] (a name from models.toml)")
        if self._pulling:
            raise RequestFailed("a model download is already running")
        self._pulling = True
        progress = WorkDoneProgress(self, f"sc2lsp-pull-{next(_tokens)}")
        try:
            await progress.begin(f"sc2lsp: pulling {name}")
            try:
                path = await asyncio.to_thread(pull, name, None, None, progress.threadsafe_report)
            except Exception as e:  # UserError: says what to do; anything else: one error all the same
                why = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
                if not isinstance(e, UserError):
                    log.exception("pull of %s failed", name)
                progress.end(f"failed: {why}")
                raise RequestFailed(f"cannot pull {name}: {why}" if not isinstance(e, UserError) else why) from None
            progress.report(f"loading {name}", 100)
            self.settings = dataclasses.replace(self.settings, model=name)
            self.engine.configure(self.settings)
            while self.engine.model_state == "loading":
                await asyncio.sleep(0.05)
            if self.engine.model_state != "ready":
                progress.end(f"{name} did not load")
                raise RequestFailed(f"{name} was downloaded to {path} but did not load: {self.engine.model_error}")
            progress.end(f"{name} loaded")
            return {"path": str(path), "model": name}
        finally:
            self._pulling = False

    def wants_completion_fallback(self) -> bool:
        mode = self.settings.completion_fallback
        if mode != "auto":
            return mode == "always"
        td = self.client_capabilities.text_document if self.client_capabilities else None
        return getattr(td, "inline_completion", None) is None


def create_server(base: Settings | None = None) -> Sc2Server:
    server = Sc2Server(base)

    @server.feature(types.INITIALIZE)
    def initialize(ls: Sc2Server, params: types.InitializeParams) -> None:
        ls._loop = asyncio.get_running_loop() if _has_loop() else None
        ls.apply_settings(params.initialization_options)

    @server.feature(types.INITIALIZED)
    def initialized(ls: Sc2Server, params: types.InitializedParams) -> None:
        ls._loop = asyncio.get_running_loop() if _has_loop() else ls._loop
        ls._initialized = True
        for level, message in ls._pending_messages:
            ls._show(level, message)
        ls._pending_messages.clear()
        if ls.engine.model_state == "not loaded":
            ls.engine.start()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: Sc2Server, params: types.DidChangeConfigurationParams) -> None:
        raw = params.settings
        ws = ls.client_capabilities.workspace if ls.client_capabilities else None
        if (not isinstance(raw, dict) or not raw) and ws is not None and ws.configuration:
            # pull model (VS Code sends null settings): ask for the "sc2lsp" section
            items = [types.ConfigurationItem(section="sc2lsp")]
            result = await ls.workspace_configuration_async(types.ConfigurationParams(items=items))
            raw = result[0] if result else None
        if raw is not None:
            ls.apply_settings(raw)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: Sc2Server, params: types.InlineCompletionParams) -> types.InlineCompletionList | None:
        s = await ls.suggest(params.text_document.uri, params.position)
        if s is None or not s.text:
            return types.InlineCompletionList(items=[])
        rng = types.Range(start=params.position, end=params.position)
        start = (params.position.line, params.position.character)
        accepted = _lsp_range(start, _advance(start, s.text, ls.encoding))
        command = types.Command(title="sc2lsp: suggestion accepted", command=CMD_ACCEPTED,
                                arguments=[params.text_document.uri, accepted, s.text])
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=s.text, range=rng,
                                                                            command=command)])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
    async def completion(ls: Sc2Server, params: types.CompletionParams) -> types.CompletionList:
        empty = types.CompletionList(is_incomplete=True, items=[])
        if not ls.wants_completion_fallback():
            return empty
        s = await ls.suggest(params.text_document.uri, params.position)
        if s is None or not s.text:
            return empty
        first = s.text.strip().splitlines()[0] if s.text.strip() else s.text
        item = types.CompletionItem(
            label=first[:60] + ("…" if len(first) > 60 or "\n" in s.text.strip() else ""),
            kind=types.CompletionItemKind.Text,
            detail="sc2lsp",
            filter_text="",
            sort_text="0",
            insert_text_format=types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(range=types.Range(start=params.position, end=params.position), new_text=s.text),
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_HIGHLIGHT)
    def document_highlight(ls: Sc2Server, params: types.DocumentHighlightParams) -> None:
        # Editors ask for highlights whenever the cursor moves (VS Code does by default): the
        # only cursor signal LSP has. No highlights from us; the prompt there gets warmed.
        ls.cursor_moved(params.text_document.uri, params.position)
        return None

    @server.feature(STATUS)
    def status(ls: Sc2Server, params: Any = None) -> dict:
        out = ls.engine.status()
        out["server"] = {
            "version": __version__,
            "open_documents": len(ls.docs),
            "position_encoding": ls.encoding,
            "workspace_folders": [f.uri for f in ls.protocol._workspace.folders.values()] if ls.protocol._workspace else [],
            "completion_fallback": ls.wants_completion_fallback(),
            "settings_defaults": settings_doc(),
            "workspaces": [{"root": str(root), "indexed": ws.ready.is_set(), "files": getattr(ws.report, "files", None)}
                           for root, ws in ls._workspaces.items()],
            "attribution": {
                "indexes": [str(p) for p in ls.attribution.indexes(ls.settings.attribution_index, ls.settings.model)],
                "from_setting": bool(ls.settings.attribution_index),
                "last_accepted": ls.last_accepted["uri"] if ls.last_accepted else None,
            },
        }
        get = params.get if isinstance(params, dict) else (lambda k: getattr(params, k, None))
        if get("prompt"):  # the last prompt the model saw (benchmarks, bug reports)
            out["last_prompt"] = ls.engine.last_prompt
        uri = get("uri")
        doc = ls.docs.get(uri) if isinstance(uri, str) else None
        if doc is not None:  # what the server believes the document is (for tests and bug reports)
            out["document"] = {"uri": doc.uri, "version": doc.version, "language": doc.language_id,
                               "chars": len(doc.text), "lines": len(doc.line_starts()),
                               "text": doc.text if len(doc.text) <= 100_000 else None}
        return out

    @server.feature(ATTRIBUTION)
    async def attribution(ls: Sc2Server, params: Any = None) -> dict:
        return await ls.attribution_check(params)

    @server.command(CMD_ACCEPTED)
    def suggestion_accepted(ls: Sc2Server, *args: Any) -> None:
        ls.accept(_command_args(args))
        return None

    @server.command(CMD_PULL)
    async def pull_model(ls: Sc2Server, *args: Any) -> dict:
        return await ls.pull_model(_command_args(args))

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: Sc2Server, params: Any = None) -> None:
        for handle in ls._warm_handles.values():
            handle.cancel()
        ls.engine.close()
        ls.stop_workspaces()

    return server


def _command_args(args: tuple) -> list:
    """The command's ``arguments`` list: pygls 2 spreads it over ``*args``; a client that wraps
    them in one more list is accepted too."""
    if len(args) == 1 and isinstance(args[0], (list, tuple)) and not isinstance(args[0], str):
        return list(args[0])
    return list(args)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
