; sc2lsp definitions and imports for JavaScript (also the base of TypeScript and TSX).
; Captures: @definition.KIND on the defining node with @name inside it;
; @import on an import with @import.module / @import.name / @import.alias / @import.wildcard.

(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_declaration name: (_) @name) @definition.class
(method_definition name: (_) @name) @definition.method

; const f = () => ..., let g = function () {...}
(lexical_declaration (variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression) (generator_function)])) @definition.function
(variable_declaration (variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression) (generator_function)])) @definition.function
; const C = class {...}
(lexical_declaration (variable_declarator name: (identifier) @name value: (class))) @definition.class

; top-level constants and variables (plain or exported)
(program (lexical_declaration (variable_declarator name: (identifier) @name)) @definition.variable)
(program (variable_declaration (variable_declarator name: (identifier) @name)) @definition.variable)
(program (export_statement declaration: (lexical_declaration (variable_declarator name: (identifier) @name)) @definition.variable))

; module.exports.f = function () {...}, exports.f = () => ...
(expression_statement (assignment_expression
  left: (member_expression property: (property_identifier) @name)
  right: [(arrow_function) (function_expression)])) @definition.function

; import "m"; import d from "m"; import {a, b as c} from "m"; import * as ns from "m"
(import_statement source: (string (string_fragment) @import.module)) @import
(import_statement (import_clause (identifier) @import.alias) source: (string (string_fragment) @import.module)) @import
(import_statement (import_clause (named_imports (import_specifier name: (_) @import.name !alias)))
  source: (string (string_fragment) @import.module)) @import
(import_statement (import_clause (named_imports (import_specifier name: (_) @import.name alias: (_) @import.alias)))
  source: (string (string_fragment) @import.module)) @import
(import_statement (import_clause (namespace_import (identifier) @import.alias)) source: (string (string_fragment) @import.module)) @import
; const x = require("m"); const {a, b} = require("m")
(variable_declarator name: (identifier) @import.alias
  value: (call_expression function: (identifier) @_req arguments: (arguments (string (string_fragment) @import.module)))
  (#eq? @_req "require")) @import
(variable_declarator name: (object_pattern (shorthand_property_identifier_pattern) @import.name)
  value: (call_expression function: (identifier) @_req arguments: (arguments (string (string_fragment) @import.module)))
  (#eq? @_req "require")) @import
