"""Which language a file is in, and that language's tags query, comment marker and keywords.

The language comes from the LSP ``languageId`` when there is one, else from the file extension.
Grammars are loaded through ``syntax.load_language`` (the per-language wheels, never a
download). The tags queries are data files, ``queries/<name>.scm``; TypeScript and TSX use
``javascript.scm`` + ``typescript.scm``, C++ uses ``c.scm`` + ``cpp.scm``. A file in no known
language is still indexed as text (similar-chunk retrieval), just without symbols.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tree_sitter import Parser, Query

from ..core.languages import language_id_for_path
from .syntax import canonical_language, load_language

QUERY_DIR = Path(__file__).with_name("queries")


@dataclass(frozen=True)
class LanguageSpec:
    name: str  #: canonical name, a key of ``syntax.GRAMMARS``
    queries: tuple[str, ...]  #: ``queries/<q>.scm`` files, concatenated
    comment: str  #: line comment marker, for elision lines (``# ...``)
    keywords: frozenset[str]
    family: str  #: import style: python, js, go, rust, java, c


def _kw(s: str) -> frozenset[str]:
    return frozenset(s.split())


_C_KW = ("auto break case char const continue default do double else enum extern float for goto if inline int "
         "long register restrict return short signed sizeof static struct switch typedef union unsigned void "
         "volatile while NULL true false bool size_t uint8_t uint16_t uint32_t uint64_t int8_t int16_t int32_t "
         "int64_t define include ifdef ifndef endif elif pragma")
_JS_KW = ("break case catch class const continue debugger default delete do else export extends finally for "
          "function if import in instanceof let new return super switch this throw try typeof var void while "
          "with yield async await of null undefined true false static get set from as console require module "
          "exports Object Array String Number Boolean Promise Map Set Error JSON Math Date Symbol")

SPECS: dict[str, LanguageSpec] = {s.name: s for s in (
    LanguageSpec("python", ("python",), "#", _kw(
        "False None True and as assert async await break class continue def del elif else except finally for "
        "from global if import in is lambda nonlocal not or pass raise return try while with yield self cls "
        "print len str int float bool list dict set tuple range isinstance super object type Exception "
        "ValueError TypeError KeyError enumerate zip open sorted min max sum any all getattr setattr hasattr "
        "repr iter next map filter bytes callable id hash abs round format vars property staticmethod "
        "classmethod NotImplementedError RuntimeError AttributeError OSError IndexError StopIteration"), "python"),
    LanguageSpec("javascript", ("javascript",), "//", _kw(_JS_KW), "js"),
    LanguageSpec("typescript", ("javascript", "typescript"), "//", _kw(
        _JS_KW + " interface type enum implements private public protected readonly abstract declare namespace "
        "keyof any unknown never string number boolean"), "js"),
    LanguageSpec("tsx", ("javascript", "typescript"), "//", _kw(
        _JS_KW + " interface type enum implements private public protected readonly abstract declare namespace "
        "keyof any unknown never string number boolean React"), "js"),
    LanguageSpec("go", ("go",), "//", _kw(
        "break case chan const continue default defer else fallthrough for func go goto if import interface map "
        "package range return select struct switch type var nil true false iota string int int8 int16 int32 int64 "
        "uint uint8 uint16 uint32 uint64 uintptr byte rune float32 float64 bool error any len cap make new append "
        "copy delete panic recover close fmt err ctx"), "go"),
    LanguageSpec("rust", ("rust",), "//", _kw(
        "as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod "
        "move mut pub ref return self Self static struct super trait true type unsafe use where while Some None Ok "
        "Err Option Result Vec String Box bool u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize f32 f64 str "
        "char println format vec panic assert assert_eq"), "rust"),
    LanguageSpec("java", ("java",), "//", _kw(
        "abstract assert boolean break byte case catch char class const continue default do double else enum "
        "extends final finally float for goto if implements import instanceof int interface long native new "
        "package private protected public return short static strictfp super switch synchronized this throw "
        "throws transient try void volatile while true false null var record String Object Integer List Map "
        "System Override"), "java"),
    LanguageSpec("c", ("c",), "//", _kw(_C_KW), "c"),
    LanguageSpec("cpp", ("c", "cpp"),
                 "//", _kw(_C_KW + " class namespace template typename public private protected virtual override "
                            "final new delete this nullptr using operator const_cast static_cast dynamic_cast "
                            "reinterpret_cast std string vector auto constexpr noexcept friend explicit mutable "
                            "try catch throw"), "c"),
)}

#: LSP language ids that are not a canonical name or one of ``syntax.ALIASES``.
_LSP_IDS = {"javascriptreact": "javascript", "typescriptreact": "tsx", "c++": "cpp", "objective-c": "c"}


def language_for(path: str, language_id: str | None = None, text: str | None = None) -> str | None:
    """Canonical language name for an LSP ``language_id`` or else the file's extension
    (``core.languages``, the one extension table); a ``.h`` file without a ``language_id`` is C++
    when its ``text`` says so (``is_cpp_header``), else C."""
    for lang in (language_id, language_id_for_path(path, text)):
        if lang:
            name = _LSP_IDS.get(lang.lower()) or canonical_language(lang)
            if name in SPECS:
                return name
    return None


def spec(name: str | None) -> LanguageSpec | None:
    return SPECS.get(name) if name else None


@cache
def query_source(name: str) -> str:
    return "\n".join((QUERY_DIR / f"{q}.scm").read_text(encoding="utf-8") for q in SPECS[name].queries)


@cache
def tags_query(name: str) -> Query | None:
    """The compiled tags query of a language, ``None`` when its grammar wheel is missing."""
    lang = load_language(name)
    if lang is None or name not in SPECS:
        return None
    return Query(lang, query_source(name))


_local = threading.local()


def parser_for(name: str) -> Parser | None:
    """A parser for ``name`` owned by the calling thread (parsers are not shared across threads)."""
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    if name not in parsers:
        lang = load_language(name)
        parsers[name] = Parser(lang) if lang is not None else None
    return parsers[name]
