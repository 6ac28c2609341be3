"""The ``sc2lsp`` subcommands, one module each with ``add_arguments(parser)`` and
``run(args) -> int``; ``sc2lsp/cli.py`` lists them. A new subcommand is a new module here plus
one line in ``cli.COMMANDS``."""
