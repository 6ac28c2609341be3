"""The four context providers: each turns a ``Request`` into ranked ``Candidate`` snippets.

* ``definitions``: definitions of the identifiers used near the cursor (its line first, then
  imported names not used elsewhere in the file yet, then the lines around, then the other
  imports), resolved through the file's imports (``from .x import f``, ``import {f} from "./x"``,
  ``require``, ``use crate::x::f``, ``#include``, Go/Java packages), else by name across the
  repository when the name is not ambiguous;
* ``outline``: when the window cuts the current file, its enclosing class (or the module) as
  signatures of what lies outside the window, nearest first;
* ``edits``: recently edited regions (from consecutive ``apply_change`` texts);
* ``similar``: windows of open and recently used files most similar (Jaccard over identifier
  sets) to the lines before the cursor.

A provider checks ``req.check()`` in its loops and stops when its time is up. Fitting the
candidates into the budget and rendering blocks is ``gather.py``'s job.

The request and candidate types are in ``request.py``, the definitions provider in
``definitions.py`` (its name lookup in ``names.py``), the other three in ``file_providers.py``;
this module names the four and re-exports what callers import from here.
"""

from __future__ import annotations

from typing import Callable

from .definitions import (CHARS_PER_TOKEN_MAX, USES_COUNTED, definitions_provider, prepare_definitions,
                          tokens_over)
from .file_providers import _chunks, chunk_postings, edits_provider, outline_provider, similar_provider
from .names import _qualifier, _Resolver, names_near_cursor
from .request import PROVIDERS, REQUEST_BUDGET_MS, Candidate, ContextBlock, ContextOptions, Late, Request

__all__ = ["CHARS_PER_TOKEN_MAX", "PROVIDERS", "PROVIDER_FUNCTIONS", "REQUEST_BUDGET_MS", "USES_COUNTED", "Candidate",
           "ContextBlock", "ContextOptions", "Late", "Request", "_Resolver", "_chunks", "_qualifier", "chunk_postings",
           "definitions_provider", "edits_provider", "names_near_cursor", "outline_provider", "prepare_definitions",
           "similar_provider", "tokens_over"]

PROVIDER_FUNCTIONS: dict[str, Callable[[Request], list[Candidate]]] = {
    "definitions": definitions_provider, "outline": outline_provider,
    "edits": edits_provider, "similar": similar_provider,
}
