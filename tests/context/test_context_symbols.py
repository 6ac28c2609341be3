"""Tags queries of the eight languages through the real grammar wheels: definitions, imports, bad input."""

from __future__ import annotations

import pytest

from sc2lsp.context.languages import SPECS, language_for, tags_query
from sc2lsp.context.symbols import Import, extract

# language -> (path, source, expected (kind, name, container) definitions, expected imports)
CASES = {
    "python": ("pkg/a.py", '''import os, numpy as np
from .util import helper as h, other
from pkg.mod import *
MAX = 3
logger = None
class Foo(Base):
    """Foo does things.

    More."""
    def bar(self, x: int) -> int:
        """Bar."""
        return x
def top(a,
        b):
    return a
''', {("constant", "MAX", None), ("variable", "logger", None), ("class", "Foo", None), ("method", "bar", "Foo"),
      ("function", "top", None)},
        {Import("os", None, "os"), Import("numpy", None, "np"), Import(".util", "helper", "h"),
         Import(".util", "other"), Import("pkg.mod", wildcard=True)}),
    "javascript": ("src/x.js", '''import d, {a, b as c} from "./m";
import * as ns from "../n";
import "./side";
const {p} = require("./r");
/** Adds two numbers. */
export function add(a, b) { return a + b }
export const mul = (a, b) => a * b;
class K extends Base {
  m(x) { return x }
}
const LIMIT = 10;
''', {("function", "add", None), ("function", "mul", None), ("class", "K", None), ("method", "m", "K"),
      ("constant", "LIMIT", None)},
        {Import("./m", None, "d"), Import("./m", "a"), Import("./m", "b", "c"), Import("../n", None, "ns"),
         Import("./side"), Import("./r", "p")}),
    "typescript": ("src/x.ts", '''import {A} from "./a";
export interface Shape { area(): number }
type Id = string;
enum Color { Red }
export function f(x: number): number { return x }
abstract class B { abstract g(): void; }
''', {("interface", "Shape", None), ("method", "area", "Shape"), ("type", "Id", None), ("enum", "Color", None),
      ("function", "f", None), ("class", "B", None), ("method", "g", "B")}, {Import("./a", "A")}),
    "tsx": ("src/App.tsx", '''import React from "react";
export function App(props: Props) { return <div>{props.x}</div>; }
interface Props { x: number }
''', {("function", "App", None), ("interface", "Props", None)}, {Import("react", None, "React")}),
    "go": ("geo/x.go", '''package geo
import (
  "fmt"
  u "example.com/proj/util"
)
// Point is a point.
type Point struct { X, Y int }
type Shape interface { Area() float64 }
const Max = 3
func (p Point) Norm() float64 { return 0 }
func New() *Point { return nil }
''', {("struct", "Point", None), ("interface", "Shape", None), ("constant", "Max", None), ("method", "Norm", None),
      ("function", "New", None)}, {Import("fmt", None, "fmt"), Import("example.com/proj/util", None, "u")}),
    "rust": ("src/a.rs", '''use crate::geo::{Point, shapes::Circle as C, self};
use std::collections::*;
mod util;
/// A thing.
pub struct Thing { x: i32 }
impl Thing { pub fn new() -> Self { Thing { x: 0 } } }
trait T { fn t(&self); }
const N: usize = 3;
fn main() {}
''', {("struct", "Thing", None), ("impl", "Thing", None), ("method", "new", "Thing"), ("interface", "T", None),
      ("method", "t", "T"), ("constant", "N", None), ("function", "main", None)},
        {Import("crate::geo", "Point"), Import("crate::geo::shapes", "Circle", "C"), Import("crate::geo", None, "geo"),
         Import("std::collections", wildcard=True), Import("self::util", None, "util")}),
    "java": ("src/com/x/A.java", '''package com.x;
import java.util.List;
import com.x.util.*;
/** A class. */
public class A extends B {
  static final int N = 3;
  private int y;
  /** Does m. */
  public int m(int x) { return x; }
}
interface I { void f(); }
''', {("class", "A", None), ("constant", "N", "A"), ("field", "y", "A"), ("method", "m", "A"), ("interface", "I", None),
      ("method", "f", "I")}, {Import("java.util", "List"), Import("com.x.util", wildcard=True)}),
    "c": ("src/x.c", '''#include <stdio.h>
#include "util.h"
#define MAX 10
typedef struct point { int x; } point_t;
/* Adds two. */
int add(int a, int b) { return a + b; }
char *name(void);
''', {("constant", "MAX", None), ("type", "point_t", None), ("struct", "point", "point_t"), ("function", "add", None),
      ("function", "name", None)}, {Import("stdio.h", wildcard=True), Import("util.h", wildcard=True)}),
    "cpp": ("src/x.cpp", '''#include "a.hpp"
namespace n {
class Foo : public Bar {
 public:
  int get() const { return 1; }
};
template <typename T> T id(T x) { return x; }
}
''', {("class", "Foo", None), ("method", "get", "Foo"), ("function", "id", None)}, {Import("a.hpp", wildcard=True)}),
}


def test_every_language_has_a_compiling_query():
    assert set(CASES) == set(SPECS)
    for name in SPECS:
        assert tags_query(name) is not None, name


@pytest.mark.parametrize("language", sorted(CASES))
def test_definitions_and_imports(language):
    path, source, defs, imports = CASES[language]
    assert language_for(path) == language
    sym = extract(path, source, language)
    assert {(d.kind, d.name, d.container) for d in sym.definitions} == defs
    assert set(sym.imports) == imports
    assert sym.errors == 0


def test_signature_doc_and_lines():
    sym = extract(*CASES["python"][:2], "python")
    foo = next(d for d in sym.definitions if d.name == "Foo")
    assert (foo.start_line, foo.end_line, foo.signature, foo.doc) == (5, 11, "class Foo(Base):", "Foo does things.")
    top = next(d for d in sym.definitions if d.name == "top")
    assert top.signature == "def top(a,\n        b):" and top.body_line == 14
    js = extract(*CASES["javascript"][:2], "javascript")
    assert next(d for d in js.definitions if d.name == "add").doc == "Adds two numbers."
    go = extract(*CASES["go"][:2], "go")
    assert next(d for d in go.definitions if d.name == "Point").doc == "Point is a point."


def test_language_from_lsp_id_beats_extension():
    assert language_for("notes.txt", "python") == "python"
    assert language_for("a.jsx", "javascriptreact") == "javascript"
    assert language_for("a.tsx", "typescriptreact") == "tsx"
    assert language_for("README.md") is None
    assert language_for("x.h") == "c" and language_for("x.hpp") == "cpp"


def test_syntax_errors_parse_partially():
    sym = extract("bad.py", "def ok(a):\n    return a\n\ndef broken(:\n    pass\nclass After:\n    pass\n", "python")
    names = {d.name for d in sym.definitions}
    assert "ok" in names and "After" in names
    assert sym.errors == 1


def test_deep_nesting_does_not_recurse():
    depth = 3000
    src = "x = " + "[" * depth + "]" * depth + "\n" + "def f():\n    pass\n"
    sym = extract("deep.py", src, "python")
    assert "f" in {d.name for d in sym.definitions}
    js = "function g() {" + "{" * depth + "}" * depth + "}\n"
    assert "g" in {d.name for d in extract("deep.js", js, "javascript").definitions}


def test_text_file_gets_identifiers_only():
    sym = extract("notes.md", "Call parse_config before serve_forever.", None)
    assert sym.definitions == () and {"parse_config", "serve_forever"} <= set(sym.identifiers)


def test_lone_surrogates_and_nul_do_not_crash():
    sym = extract("odd.py", "def f():\n    return '\udc80'\x00\n", "python")
    assert [d.name for d in sym.definitions] == ["f"]


CPP_HEADER = """#pragma once
#include <string>

namespace geo {
template <typename T> struct point { T x, y; };

class shape {
 public:
  virtual ~shape() = default;
  virtual double area() const = 0;
  std::string name() const { return "shape"; }
};
}  // namespace geo
"""
C_HEADER = """#ifndef VEC_H
#define VEC_H
struct vec { double x, y; };
typedef struct vec vec_t;
double vec_len(const struct vec *v);
#endif
"""


def test_a_cpp_header_is_indexed_as_cpp_and_a_c_header_as_c(tmp_path):
    """``.h`` is C by extension; a header whose text has what only C++ writes (a namespace, a
    template, a class) is parsed with the C++ grammar (fmt's format.h gave 185 definitions as C,
    435 as C++), in the index and wherever no editor named the language."""
    from sc2lsp.context.index import RepoIndex
    from sc2lsp.core.languages import language_id_for_path
    from sc2lsp.workspace.indexer import index_workspace

    (tmp_path / "shape.h").write_text(CPP_HEADER)
    (tmp_path / "vec.h").write_text(C_HEADER)
    assert language_id_for_path("shape.h", CPP_HEADER) == "cpp" and language_id_for_path("vec.h", C_HEADER) == "c"
    assert language_id_for_path("shape.h") == "c"  # no text: the extension's
    assert language_for("shape.h", "c", CPP_HEADER) == "c"  # the editor's language id wins
    for lazy in (False, True):
        idx = RepoIndex()
        index_workspace(idx, tmp_path, lazy=lazy, cache=None)
        assert idx.get("shape.h").language == "cpp" and idx.get("vec.h").language == "c"
        assert [d.path for d in idx.definitions_named("shape")] == ["shape.h"]
        assert [d.path for d in idx.definitions_named("vec_len")] == ["vec.h"]
