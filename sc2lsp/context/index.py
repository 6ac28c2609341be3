"""The repository index: per file its language, text, definitions, imports and identifiers.

Pure: the index never touches the disk. It is fed by the editor (didOpen/didChange/didSave),
by the initial scan and by the file watcher, all through ``apply_change(path, text)`` and
``remove(path)``; paths are workspace-relative and ``/``-separated (they are what the model
sees after ``<file_sep>``). It is safe to call from several threads: every change swaps whole
immutable ``FileEntry`` objects under a lock, and readers get tuples, never live containers.

Besides symbols it keeps what the context providers need: open and recently used files
(``open``/``close``/``touch``) and recently edited regions (derived from consecutive texts of
a file).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import posixpath
import threading
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

from ..core.content import MAX_BYTES, text_reason
from .incremental import changed_lines, rederive
from .languages import language_for
from .symbols import IDENTIFIER, Definition, FileSymbols, candidate_names, extract  # noqa: F401

log = logging.getLogger(__name__)

#: Kinds found by name across the repository (fields and locals only show in outlines).
LOOKUP_KINDS = frozenset({"function", "method", "class", "struct", "interface", "enum", "impl", "type",
                          "constant", "variable", "macro"})


@dataclass(frozen=True, slots=True)
class Edit:
    """Lines ``start..end`` (inclusive, in the file's text after the change) changed."""

    path: str
    start: int
    end: int
    seq: int


class FileEntry:
    """One indexed file. ``symbols`` may be given (a parse done elsewhere: worker processes, the
    symbol cache) or left None: then the file is parsed on first use (lazily, outside any lock;
    two threads may both parse it, with the same result). ``names`` is what the index's name
    table holds for the file until then: a superset of its definitions' names
    (``symbols.candidate_names``)."""

    # no __slots__: the providers keep per-entry caches in its __dict__ (``_chunk_map``)

    def __init__(self, path: str, language: str | None, text: str, symbols: FileSymbols | None = None,
                 digest: bytes | None = None, *, names: tuple[str, ...] | None = None,
                 loader: Callable[[], FileSymbols | None] | None = None):
        self.path = path
        self.language = language
        # a text with a non-ASCII character is a str of 2 or 4 bytes per character: kept as UTF-8
        # (``text`` decodes it, the last few decoded kept), the index's memory ~1.2x -> ~1.0x the source
        self._text: str | bytes = text if text.isascii() else text.encode("utf-8", errors="surrogatepass")
        self._symbols = symbols
        self.digest = digest if digest is not None else text_digest(text)
        self._lines: list[str] | None = None
        self._by_name: dict[str, list[Definition]] | None = None
        #: the names a RepoIndex filed it under: its definitions' once parsed; None = its candidate names
        self._filed: tuple[str, ...] | None = ()
        #: its definitions' names (of ``LOOKUP_KINDS``) when known without its symbols, and where
        #: its symbols come from before a parse (the symbol cache: decoded on first use)
        self._names = names
        self._loader = loader
        self._on_parse: Callable[[FileEntry], None] | None = None

    def __repr__(self) -> str:
        return f"FileEntry({self.path!r}, {self.language!r}, parsed={self.parsed})"

    @property
    def text(self) -> str:
        """The text (a request's reading: a UTF-8 kept text's decoding is kept a while)."""
        t = self._text
        return t if type(t) is str else _decoded(t)

    def text_once(self) -> str:
        """The text for a one-off reading (indexing, a parse): not kept, so that indexing a
        workspace does not fill the decoded-text cache with files no request reads."""
        t = self._text
        return t if type(t) is str else t.decode("utf-8", errors="surrogatepass")

    @property
    def parsed(self) -> bool:
        return self._symbols is not None

    @property
    def needs_parse(self) -> bool:
        """No symbols and nowhere to load them from but a parse."""
        return self._symbols is None and self._loader is None

    @property
    def symbols(self) -> FileSymbols:
        s = self._symbols
        if s is None:
            loader, self._loader = self._loader, None
            s = loader() if loader is not None else None
            s = self._symbols = s if s is not None else extract(self.path, self.text_once(), self.language)
            hook = self._on_parse
            if hook is not None:
                hook(self)
        return s

    def set_compact(self, names: tuple[str, ...], loader: Callable[[], FileSymbols | None]) -> bool:
        """Give an unparsed entry the names of its definitions and a loader of its symbols (a
        compact form made elsewhere, decoded on first use); False if it had symbols."""
        if self._symbols is not None:
            return False
        self._names, self._loader = names, loader
        hook = self._on_parse
        if hook is not None:
            hook(self)
        return True

    def set_symbols(self, symbols: FileSymbols) -> bool:
        """Give an unparsed entry symbols parsed elsewhere (of this very text); False if it had some."""
        if self._symbols is not None:
            return False
        self._symbols, self._loader = symbols, None
        hook = self._on_parse
        if hook is not None:
            hook(self)
        return True

    def lookup_names(self) -> tuple[str, ...] | frozenset[str]:
        """The names the index files this entry under: its definitions' (of ``LOOKUP_KINDS``) once
        parsed, else the cheap superset (``candidate_names``, computed again when needed: not kept)."""
        symbols = self._symbols
        if symbols is not None:
            return lookup_names(symbols)
        return self._names if self._names is not None else candidate_names(self.text_once(), self.language)

    def filed_names(self):
        return self._filed if self._filed is not None else candidate_names(self.text_once(), self.language)

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines

    @property
    def definitions(self) -> tuple[Definition, ...]:
        return self.symbols.definitions

    def defs_named(self, name: str) -> list[Definition]:
        table = self._by_name
        if table is None:
            table = {}
            for d in self.symbols.definitions:
                table.setdefault(d.name, []).append(d)
            self._by_name = table
        return table.get(name, [])

    def occurrences(self, name: str, at_most: int = 2) -> int:
        """How often the identifier ``name`` occurs in the text, counted up to ``at_most``.

        ``str.find`` with a word-boundary check: a few names of a 700 KB file cost microseconds,
        where tokenizing the whole text (a ``Counter`` of every identifier) costs ~100 ms, and a
        request's entry is often new (the text being typed is not the indexed one)."""
        text, n, i = self.text, 0, 0
        size = len(name)
        while n < at_most:
            i = text.find(name, i)
            if i < 0:
                break
            end = i + size
            if (i == 0 or not _word_char(text[i - 1])) and (end == len(text) or not _word_char(text[end])):
                n += 1
            i = end
        return n


@functools.lru_cache(maxsize=256)
def _decoded(data: bytes) -> str:
    """The text of an entry kept as UTF-8 (the files a request works on are decoded once; a
    request reads the texts of many files: 48 was too few on networkx, whose 88 non-ASCII files
    may all be candidates of one gathering). Holds at most 256 texts, only of files used."""
    return data.decode("utf-8", errors="surrogatepass")


def lookup_names(symbols: FileSymbols) -> tuple[str, ...]:
    """The names a parsed file is filed under: its definitions' of ``LOOKUP_KINDS``, in order."""
    return tuple(dict.fromkeys(d.name for d in symbols.definitions if d.kind in LOOKUP_KINDS))


def _word_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", errors="surrogatepass"), digest_size=16).digest()


def reject_reason(text: str, max_bytes: int = MAX_BYTES) -> str | None:
    """Why a text is not indexed (too large, minified, generated), by the workspace scan's rules."""
    if len(text) > max_bytes:  # cheap test first: never encode a huge text
        return f"larger than {max_bytes} bytes"
    return text_reason(text, max_bytes=max_bytes)


def build_entry(path: str, text: str, language_id: str | None = None, *, lazy: bool = False) -> FileEntry:
    """One file's entry, parsed now, or (``lazy``) on first use."""
    language = language_for(path, language_id, text)
    return FileEntry(path, language, text, None if lazy else extract(path, text, language), text_digest(text))


class RepoIndex:
    def __init__(self, *, max_bytes: int = MAX_BYTES, recent_files: int = 16, recent_edits: int = 32):
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._files: dict[str, FileEntry] = {}
        self._by_name: dict[str, list[str]] = {}  #: name -> paths of the files filed under it
        self._by_basename: dict[str, set[str]] = {}
        self._by_dir: dict[str, set[str]] = {}
        self._open: dict[str, None] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._recent_max = recent_files
        self._edits: deque[Edit] = deque(maxlen=recent_edits)
        self._seq = 0
        self.generation = 0  #: bumped on every change that alters the index
        #: called (from whichever thread parsed it) when an entry of the index gets its symbols
        self.on_parsed: Callable[[FileEntry], None] | None = None

    # -- changes ------------------------------------------------------------------------------

    def apply_change(self, path: str, text: str, language_id: str | None = None, *, lazy: bool = False,
                     checked: bool = False) -> bool:
        """Index ``text`` as the contents of ``path``; False when unchanged or rejected (then the
        file is dropped from the index: a file that became too large or minified disappears).
        The symbols of a changed file are re-derived from its previous ones when only some of its
        statements changed (``incremental``: a save or a keystroke parses one function, not the
        file); otherwise ``lazy``: the text is parsed when something needs its symbols (a request,
        a name lookup that may find a definition in it), not here. ``checked``: the caller applied
        the content rules already (the watcher and the scan read files through them)."""
        with self._lock:
            old = self._files.get(path)
        if old is not None and old.text_once() == text:
            return False
        reason = None if checked else reject_reason(text, self.max_bytes)
        if reason:
            log.debug("not indexing %s: %s", path, reason)
            self.remove(path)
            return False
        entry = build_entry(path, text, language_id, lazy=True)
        derived = rederive(old, entry) if old is not None else None
        if derived is not None:
            entry._symbols = derived
        elif not lazy:
            entry._symbols = extract(path, text, entry.language)
        changed = self.apply_entry(entry)
        hook = self.on_parsed
        if changed and derived is not None and hook is not None:
            hook(entry)  # (a full parse on first use calls it too)
        return changed

    def apply_entry(self, entry: FileEntry) -> bool:
        """Put a built entry in place of the file's previous one."""
        with self._lock:
            old = self._files.get(entry.path)
            if old is not None and old.digest == entry.digest:
                return False
            if old is not None:
                self._unlink(old)
                self._record_edit(old, entry)
            self._files[entry.path] = entry
            self._file_names(entry)
            entry._on_parse = self._parsed
            self._by_basename.setdefault(posixpath.basename(entry.path), set()).add(entry.path)
            self._by_dir.setdefault(posixpath.dirname(entry.path), set()).add(entry.path)
            self.generation += 1
            return True

    def remove(self, path: str) -> bool:
        with self._lock:
            old = self._files.pop(path, None)
            if old is None:
                return False
            self._unlink(old)
            self._recent.pop(path, None)
            if any(e.path == path for e in self._edits):
                self._edits = deque((e for e in self._edits if e.path != path), maxlen=self._edits.maxlen)
            self.generation += 1
            return True

    def remove_tree(self, directory: str) -> int:
        """Remove every file under ``directory`` (a deleted or moved-away folder)."""
        prefix = directory.strip("/") + "/"
        with self._lock:
            doomed = [p for p in self._files if p.startswith(prefix)]
        return sum(self.remove(p) for p in doomed)

    def _file_names(self, entry: FileEntry, had=()) -> None:
        """File ``entry`` under its lookup names (under the lock), keeping the places it ``had``."""
        symbols = entry._symbols  # one reading: another thread may be parsing it
        if symbols is None and entry._names is not None:
            symbols = names = entry._names  # known without the symbols (the cache told)
        else:
            names = (lookup_names(symbols) if symbols is not None else candidate_names(entry.text_once(), entry.language))
        if had:
            keep = set(names)
            for name in had:
                if name not in keep:
                    self._unfile(name, entry.path)
            had = set(had)
        table, path = self._by_name, entry.path
        for name in names:
            if name not in had:
                lst = table.get(name)
                if lst is None:
                    table[name] = [path]
                else:
                    lst.append(path)
        entry._filed = names if symbols is not None else None

    def _unfile(self, name: str, path: str) -> None:
        lst = self._by_name.get(name)
        if lst is not None:
            try:
                lst.remove(path)
            except ValueError:
                pass
            if not lst:
                del self._by_name[name]

    def _parsed(self, entry: FileEntry) -> None:
        """An entry got its symbols (or the names of its definitions): file it under those only;
        ``on_parsed`` hears of a parse, not of a decoded compact form."""
        with self._lock:
            if self._files.get(entry.path) is not entry or entry._filed is not None:
                return  # replaced meanwhile, or already filed under its definitions
            self._file_names(entry, entry.filed_names())
        hook = self.on_parsed
        if hook is not None and entry._symbols is not None:
            hook(entry)

    def _unlink(self, old: FileEntry) -> None:
        old._on_parse = None
        for name in old.filed_names():
            self._unfile(name, old.path)
        old._filed = ()
        for table, key in ((self._by_basename, posixpath.basename(old.path)), (self._by_dir, posixpath.dirname(old.path))):
            s = table.get(key)
            if s is not None:
                s.discard(old.path)
                if not s:
                    del table[key]

    def _record_edit(self, old: FileEntry, new: FileEntry) -> None:
        p, _, b_end = changed_lines(old.lines, new.lines)
        start, end = p, b_end - 1
        if end < start:  # lines only deleted: mark the join
            start, end = max(0, p - 1), min(len(new.lines) - 1, p)
        self._seq += 1
        if self._edits and self._edits[-1].path == new.path:
            last = self._edits[-1]
            if start <= last.end + 2 and end >= last.start - 2:
                self._edits.pop()
                start, end = min(start, last.start), max(end, last.end)
        self._edits.append(Edit(new.path, start, end, self._seq))

    # -- editor state ---------------------------------------------------------------------------

    def open(self, path: str) -> None:
        with self._lock:
            self._open[path] = None
            self.touch(path)

    def close(self, path: str) -> None:
        with self._lock:
            self._open.pop(path, None)

    def touch(self, path: str) -> None:
        """Mark ``path`` as recently used (the similar-chunk provider looks at these files)."""
        with self._lock:
            self._recent[path] = None
            self._recent.move_to_end(path)
            while len(self._recent) > self._recent_max:
                self._recent.popitem(last=False)

    def recent_files(self) -> tuple[str, ...]:
        """Open files (in opening order), then recently used ones, most recent first."""
        with self._lock:
            out = [p for p in self._open if p in self._files]
            out += [p for p in reversed(self._recent) if p not in self._open and p in self._files]
            return tuple(out)

    def recent_edits(self) -> tuple[Edit, ...]:
        """Edited regions, most recent first."""
        with self._lock:
            return tuple(reversed(self._edits))

    # -- queries --------------------------------------------------------------------------------

    def get(self, path: str) -> FileEntry | None:
        return self._files.get(path)

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def __len__(self) -> int:
        return len(self._files)

    def paths(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._files))

    def files_defining(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(certain, possible)``: the files with a definition (of ``LOOKUP_KINDS``) named
        ``name``, and those not parsed yet that may have one; nothing is parsed or decoded (a
        caller that drops a name found in too many files learns it here)."""
        with self._lock:
            paths = self._by_name.get(name, ())
            certain = tuple(p for p in paths if self._files[p]._filed is not None)
            return certain, tuple(p for p in paths if self._files[p]._filed is None)

    def definitions_named(self, name: str, within=None) -> tuple[Definition, ...]:
        """Definitions (of ``LOOKUP_KINDS``) named ``name`` across the index (``within``: only in
        these files); files filed under the name that are not parsed yet are parsed here (outside
        the lock)."""
        with self._lock:
            entries = [self._files[p] for p in self._by_name.get(name, ()) if within is None or p in within]
        out: list[Definition] = []
        for e in entries:
            found = None
            if e._symbols is None:  # in the compact form: decode only the definitions named so (a
                named = getattr(e._loader, "named", None)  # name found in many files; nothing kept)
                found = named(name) if named is not None else None
            if found is None:
                found = e.defs_named(name)  # (a file asked for itself, e.g. an import, decodes it all)
            out += [d for d in found if d.kind in LOOKUP_KINDS]
        return tuple(out)

    def compact(self) -> None:
        """Rebuild the name table at its size (a dict keeps the room of keys deleted from it: the
        candidate names of files parsed since)."""
        with self._lock:
            self._by_name = dict(self._by_name)

    def unparsed(self) -> list[FileEntry]:
        """Entries still waiting for their parse (in path order)."""
        with self._lock:
            return [self._files[p] for p in sorted(self._files) if self._files[p].needs_parse]

    def languages(self) -> dict[str, int]:
        """Files per language ("text" without one), most files first, without parsing anything."""
        with self._lock:
            langs = Counter(e.language or "text" for e in self._files.values())
        return dict(sorted(langs.items(), key=lambda kv: (-kv[1], kv[0])))

    def files_named(self, basename: str) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._by_basename.get(basename, ())))

    def files_in_dir(self, directory: str) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._by_dir.get(directory.strip("/"), ())))

    def dirs(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._by_dir))

    def stats(self) -> dict:
        """Counts over the whole index (this parses what is not parsed yet)."""
        with self._lock:
            entries = list(self._files.values())
        for e in entries:
            e.symbols  # noqa: B018  (parsed or loaded here)
        with self._lock:
            return {
                "files": len(self._files),
                "definitions": sum(len(e.definitions) for e in self._files.values()),
                "imports": sum(len(e.symbols.imports) for e in self._files.values()),
                "names": len(self._by_name),
                "bytes": sum(len(e.text_once()) for e in self._files.values()),
                "files_with_syntax_errors": sum(e.symbols.errors for e in self._files.values()),
                "languages": self.languages(),
            }
