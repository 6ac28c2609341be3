"""Errors meant for the user: the CLI prints their message, without a traceback."""


class UserError(Exception):
    """A problem the user can fix (missing model, bad file, unknown name); the message says how."""
