"""``Workspaces``: the workspace folders of one language server and their repository context.

    ws = Workspaces(documents)                   # documents() -> [(uri, text, language_id)]
    ws.set_folders([(path, name), ...])          # on initialize / didChangeWorkspaceFolders
    ws.start()                                   # at initialized: every folder's index starts scanning
    ws.locate(uri) -> (relative path, repo name) # the prompt's path, one mapping for everything
    ws.did_open(uri, text, lang); ws.did_change(uri); ws.did_close(uri)
    ws.context(cursor, plan, count)              # the engine's ``context_fn``
    ws.context(cursor, plan, count, complete=True)  # a warm-up's: waits for the index, no time budgets
    ws.wait_settled(uri, timeout)                # a document's first request: scan and preparation done
    ws.roots                                     # the user's own code (attribution ``exclude``)
    ws.stop()

It owns what the server used to compute in several places: the folders and their resolved roots
(computed once per ``set_folders``), the mapping of a URI to a workspace-relative path
(``paths.relative_path``: judged by the resolved target, so symlinks map like the file they point
to), one ``WorkspaceContext`` per folder (index, initial scan, watcher; started on first use),
and flushing documents changed since the index last saw them before context is gathered. It knows
no LSP: documents come in as URIs and texts, so the engine's context function never calls back
into ``sc2lsp/lsp``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from .paths import as_path, relative_path, resolve
from .policy import FilePolicy, Verdict

if TYPE_CHECKING:
    from ..core.budget import BudgetPlan
    from ..core.prompt import SourceFile
    from .service import WorkspaceContext

#: ``documents() -> [(uri, text, language_id)]``: the open documents the index may see (the
#: editor's text wins over the disk)
OpenDocuments = Callable[[], Iterable[tuple[str, str, str]]]


@dataclass(frozen=True)
class Folder:
    path: Path  #: as the editor named it
    root: Path  #: resolved (symlinks followed): what documents are judged against
    name: str  #: the prompt's ``<repo_name>``


def _default_context(root: Path) -> "WorkspaceContext":
    from .service import WorkspaceContext

    return WorkspaceContext(root).start()


class Workspaces:
    def __init__(self, documents: OpenDocuments = lambda: (), *,
                 context_factory: Callable[[Path], "WorkspaceContext"] = _default_context):
        self._documents = documents
        self._factory = context_factory
        self._folders: tuple[Folder, ...] = ()
        self._contexts: dict[Path, "WorkspaceContext"] = {}  # resolved root -> its index
        self._dirty: set[str] = set()  # documents changed since the index last saw them
        self._waited: set[str] = set()  # documents whose first request waited for the index
        self._lock = threading.Lock()
        self.enabled = True  #: repository context on (the ``repoContext`` setting)
        #: the token counter documents are prepared with when opened (the server sets the model's)
        self.count: Callable[[str], int] | None = None
        self.started = True  #: whether didOpen may start an index (False before ``initialized``)
        self.policy = FilePolicy()  #: the file-access policy over the folders (``policy.py``)

    # ---------------------------------------------------------------- folders and paths

    def set_folders(self, folders: Sequence[tuple[str | Path, str | None]]) -> bool:
        """The workspace folders as (path or file: URI, name or None for the basename). The index
        of a folder no longer among them is stopped and dropped (its watcher and threads too).
        Returns whether the folders changed."""
        out = []
        for where, name in folders:
            path = as_path(where)
            if path is not None:
                out.append(Folder(path, resolve(path), name or path.name))
        # innermost first: a document in nested folders belongs to the deepest one
        new = tuple(sorted(out, key=lambda f: -len(f.root.parts)))
        changed, self._folders = new != self._folders, new
        self.policy.set_roots(f.root for f in self._folders)
        roots = {f.root for f in self._folders}
        with self._lock:
            gone = [self._contexts.pop(r) for r in list(self._contexts) if r not in roots]
        for ctx in gone:  # off the caller's thread (the LSP event loop): stopping joins the watcher's
            threading.Thread(target=ctx.stop, name="sc2lsp-stop-index", daemon=True).start()
        return changed

    @property
    def folders(self) -> tuple[Folder, ...]:
        return self._folders

    @property
    def roots(self) -> list[Path]:
        """The folders as the editor named them: the user's own code."""
        return [f.path for f in self._folders]

    def verdict(self, uri: str) -> Verdict:
        """The file-access policy on ``uri``: may the server read it, may its buffer be used?"""
        return self.policy.judge(uri)

    def folder_of(self, uri: str) -> tuple[Folder, str] | None:
        """The folder holding ``uri`` and the document's path relative to it, or None."""
        for folder in self._folders:
            rel = relative_path(uri, folder.root)
            if rel is not None:
                return folder, rel
        return None

    def locate(self, uri: str) -> tuple[str | None, str | None]:
        """(path shown to the model, repository name): workspace-relative inside a folder, the
        file name outside every folder, (None, None) for a URI that is not a file."""
        found = self.folder_of(uri)
        if found is not None:
            return found[1], found[0].name
        path = as_path(uri)
        return (path.name, None) if path is not None else (None, None)

    # ---------------------------------------------------------------- indexes

    def context_for(self, uri: str, create: bool = True) -> "WorkspaceContext | None":
        """The repository index of the folder holding ``uri`` (started on first use)."""
        if not self.enabled:
            return None
        found = self.folder_of(uri)
        return None if found is None else self._context_at(found[0].root, create)

    def start(self) -> None:
        """Start the index of every workspace folder (at ``initialized`` and when folders are
        added), so that the initial scan runs while the model loads and before the first
        document's first request, instead of from that document's didOpen."""
        if self.enabled and self.started:
            for folder in self._folders:
                self._context_at(folder.root, True)

    def _context_at(self, root: Path, create: bool) -> "WorkspaceContext | None":
        if not root.is_dir() or root in (Path(root.anchor), resolve(Path.home())):
            return None  # a whole disk or home directory is not a project: never index it
        with self._lock:
            ctx = self._contexts.get(root)
            if ctx is not None or not create:
                return ctx
            ctx = self._contexts[root] = self._factory(root)
            if self.count is not None:
                ctx.count = self.count
        for doc_uri, text, lang in self._documents():  # documents opened before the index existed
            held = self.folder_of(doc_uri)
            if held is not None and held[0].root == root:
                ctx.did_open(doc_uri, text, lang)
        return ctx

    def contexts(self) -> dict[Path, "WorkspaceContext"]:
        with self._lock:
            return dict(self._contexts)

    def stop(self) -> None:
        with self._lock:
            contexts, self._contexts = list(self._contexts.values()), {}
        for ctx in contexts:
            ctx.stop()

    # ---------------------------------------------------------------- documents

    def did_open(self, uri: str, text: str, language_id: str) -> None:
        ctx = self.context_for(uri, create=self.started)
        if ctx is not None:
            ctx.did_open(uri, text, language_id)

    def did_change(self, uri: str) -> None:
        """``uri`` changed: the index sees its new text before the next context lookup."""
        self._dirty.add(uri)

    def did_close(self, uri: str) -> None:
        self._waited.discard(uri)
        ctx = self.context_for(uri, create=False)
        if ctx is not None:
            ctx.did_close(uri)
        self._dirty.discard(uri)

    def flush(self) -> None:
        """Bring the indexes up to date with the editor's text of changed documents."""
        if not self._dirty:
            return
        documents = self._documents()  # first: it may fail when read from a warm-up's thread
        dirty, self._dirty = self._dirty, set()
        for uri, text, lang in documents:
            if uri in dirty:
                ctx = self.context_for(uri, create=False)
                if ctx is not None:
                    ctx.did_change(uri, text, lang)

    # ---------------------------------------------------------------- the engine's context

    def context(self, cur, plan: "BudgetPlan", count: Callable[[str], int],
                complete: bool = False) -> "list[SourceFile] | None":
        """The engine's ``context_fn``: context files for a request (None: still indexing).
        ``complete`` (a warm-up, on its own thread): wait for the index, no provider time budgets."""
        ctx = self.context_for(cur.uri)
        if ctx is None:
            return []
        if not ctx.ready.is_set() and not complete:
            return None
        try:
            self.flush()
        except RuntimeError:  # the documents changed while a warm-up's thread read them: next time
            pass
        blocks = ctx.blocks(cur.uri, cur.text, cur.offset, plan, count=count, language_id=cur.language,
                            **({"complete": True} if complete else {}))
        return None if blocks is None else [b.source_file() for b in blocks]

    def settled(self, uri: str) -> bool:
        """Whether the index of ``uri``'s folder is scanned and ``uri`` prepared (True outside any
        folder, and once a request has waited for it: only a document's first request waits)."""
        if uri in self._waited:
            return True
        ctx = self.context_for(uri, create=False)
        return ctx is None or ctx.settled(uri)

    def wait_settled(self, uri: str, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for ``settled(uri)`` (blocking: call it off the event loop)."""
        self._waited.add(uri)
        ctx = self.context_for(uri, create=False)
        return ctx is None or ctx.wait_settled(uri, timeout)
