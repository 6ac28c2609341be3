"""python -m sc2lsp: the same as the `sc2lsp` command."""

from .cli import main

raise SystemExit(main())
