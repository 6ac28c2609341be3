"""The LSP layer: the only package that imports pygls and lsprotocol (see ``server.py``)."""
