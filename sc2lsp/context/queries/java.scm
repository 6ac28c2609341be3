; sc2lsp definitions and imports for Java.

(class_declaration name: (identifier) @name) @definition.class
(record_declaration name: (identifier) @name) @definition.class
(interface_declaration name: (identifier) @name) @definition.interface
(enum_declaration name: (identifier) @name) @definition.enum
(annotation_type_declaration name: (identifier) @name) @definition.interface
(method_declaration name: (identifier) @name) @definition.method
(interface_body (constant_declaration declarator: (variable_declarator name: (identifier) @name)) @definition.constant)
(class_body (field_declaration declarator: (variable_declarator name: (identifier) @name)) @definition.field)

(import_declaration (scoped_identifier) @import.module (asterisk) @import.wildcard) @import
(import_declaration (scoped_identifier) @import.module) @import
