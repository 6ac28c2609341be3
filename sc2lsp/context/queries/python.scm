; sc2lsp definitions and imports for Python.
; Captures: @definition.KIND on the defining node with @name inside it;
; @import on an import statement with @import.module / @import.name / @import.alias / @import.wildcard.

(class_definition name: (identifier) @name) @definition.class
(function_definition name: (identifier) @name) @definition.function

; module-level assignments: constants (UPPER_CASE) and variables
(module (expression_statement (assignment left: (identifier) @name)) @definition.variable)
(module (expression_statement (assignment left: (identifier) @name type: (_))) @definition.variable)
(module (type_alias_statement (type (identifier) @name)) @definition.type)

(import_statement name: (dotted_name) @import.module) @import
(import_statement name: (aliased_import name: (dotted_name) @import.module alias: (identifier) @import.alias)) @import
(import_from_statement module_name: (_) @import.module name: (dotted_name) @import.name) @import
(import_from_statement module_name: (_) @import.module
  name: (aliased_import name: (dotted_name) @import.name alias: (identifier) @import.alias)) @import
(import_from_statement module_name: (_) @import.module (wildcard_import) @import.wildcard) @import
