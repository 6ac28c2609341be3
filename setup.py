"""The optional C extension of the attribution query path (sc2lsp/attribution/_speedups.c); everything
else is in pyproject.toml, whose setuptools table declares extensions only as an experimental
feature. When the extension cannot be built (no C compiler), the install goes on and the same code
runs in Python (sc2lsp/attribution/speedups.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sc2lsp.attribution._speedups", ["sc2lsp/attribution/_speedups.c"], optional=True,
                             extra_compile_args=["-O2"])])
