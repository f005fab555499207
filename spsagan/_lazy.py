"""Lazy re-exports for package `__init__` files.

A package lists its public names as `_LAZY = {name: "spsagan.pkg.module"}` and sets
`__getattr__ = lazy_exports(__name__, _LAZY)`: `from spsagan.pkg import name` then imports only the
module that defines `name`. This keeps each pipeline stage's code dependencies (derived from its
imports by `spsagan.pipeline.imports`, which reads the same `_LAZY` literal) as tight as its real use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` that imports `table[name]` on first access of `name`."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(table[name]), name)

    return __getattr__
