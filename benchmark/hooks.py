"""Suite hooks for the report: one lookup order for every kind (registered, built in, suite class)."""

from __future__ import annotations

import importlib
from typing import Callable, Mapping


def suite_hook(suite: str, registered: Mapping[str, Callable], builtin: Mapping[str, str],
               attr: str) -> Callable | None:
    """The hook a suite gives for ``attr``: one registered for it, else a built-in one
    (``"module:function"``, imported only when asked for), else the suite class's own ``attr``
    (a staticmethod or classmethod), else None."""
    if suite in registered:
        return registered[suite]
    if suite in builtin:
        mod, fn = builtin[suite].split(":")
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError):
            pass
    try:
        from benchmark.registry import suite_class

        fn = getattr(suite_class(suite), attr, None)
    except Exception:
        return None
    return fn if callable(fn) else None
