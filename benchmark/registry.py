"""Name -> class registries for predictors and suites, filled by decorators and entry points."""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

PREDICTOR_GROUP = "triadbench.predictors"
SUITE_GROUP = "triadbench.suites"

# Built-ins are imported on first use, never at import time.
_BUILTIN_MODULES = (
    "benchmark.suites.linear_regression",
    "baselines.lookup",
    "baselines.reference",
    "baselines.template_regression",
    "baselines.template_mix",
    "baselines.algorithm_select",
    "baselines.icl_transformer",
    "baselines.finetune",
    "benchmark.suites.strings",
    "benchmark.suites.arc",
    "baselines.strings_template",
    "baselines.grid_template",
    "baselines.arc_llm",
    "baselines.hf_lm",
)

_PREDICTORS: dict[str, type] = {}
_SUITES: dict[str, type] = {}
_loaded = False
_load_errors: dict[str, str] = {}

T = TypeVar("T")


def register_predictor(name: str | None = None) -> Callable[[T], T]:
    """Class decorator: ``@register_predictor("my-baseline")`` makes it runnable by name."""

    def deco(cls: T) -> T:
        key = name or getattr(cls, "name", "")
        if not key:
            raise ValueError(f"{cls!r} needs a name")
        if not getattr(cls, "name", ""):
            cls.name = key  # type: ignore[attr-defined]
        _PREDICTORS[key] = cls  # type: ignore[assignment]
        return cls

    return deco


def register_suite(name: str | None = None) -> Callable[[T], T]:
    """Class decorator: ``@register_suite("my-suite")``."""

    def deco(cls: T) -> T:
        key = name or getattr(cls, "name", "")
        if not key:
            raise ValueError(f"{cls!r} needs a name")
        _SUITES[key] = cls  # type: ignore[assignment]
        return cls

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # optional built-ins whose extras are missing
            if exc.name and (exc.name == mod or mod.startswith(exc.name + ".")):
                continue
            _load_errors[mod] = f"{type(exc).__name__}: {exc}"
    # Extra modules named in TRIADBENCH_PLUGINS (comma-separated), imported in every process,
    # worker processes included: a way to register baselines without packaging them.
    for mod in filter(None, (m.strip() for m in os.environ.get("TRIADBENCH_PLUGINS", "").split(","))):
        try:
            importlib.import_module(mod)
        except Exception as exc:
            _load_errors[f"TRIADBENCH_PLUGINS:{mod}"] = f"{type(exc).__name__}: {exc}"
    for group, table in ((PREDICTOR_GROUP, _PREDICTORS), (SUITE_GROUP, _SUITES)):
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the harness
                _load_errors[f"{group}:{ep.name}"] = f"{type(exc).__name__}: {exc}"
                continue
            if isinstance(obj, type):
                table.setdefault(ep.name, obj)
                if not getattr(obj, "name", ""):
                    obj.name = ep.name


def load_errors() -> dict[str, str]:
    """Modules or plugins that failed to load, with the reason (shown by ``triadbench list``)."""
    _load()
    return dict(_load_errors)


def list_predictors() -> dict[str, type]:
    _load()
    return dict(sorted(_PREDICTORS.items()))


def list_suites() -> dict[str, type]:
    _load()
    return dict(sorted(_SUITES.items()))


def _lookup(kind: str, table: dict[str, type], name: str) -> type:
    _load()
    if name not in table:
        group = PREDICTOR_GROUP if kind == "predictor" else SUITE_GROUP
        broken = _load_errors.get(f"{group}:{name}")
        if broken:
            raise KeyError(f"{kind} {name!r} comes from a plugin that failed to load: {broken}")
        known = ", ".join(sorted(table)) or "none"
        raise KeyError(f"unknown {kind} {name!r}; known {kind}s: {known}")
    return table[name]


def predictor_class(name: str) -> type:
    return _lookup("predictor", _PREDICTORS, name)


def suite_class(name: str) -> type:
    return _lookup("suite", _SUITES, name)


def get_predictor(name: str, **params: Any) -> Any:
    """Construct a registered predictor by name."""
    cls = predictor_class(name)
    obj = cls(**params)
    return obj


def get_suite(name: str, **params: Any) -> Any:
    """Construct a registered suite by name (parameters validated now)."""
    return suite_class(name)(**params)
