"""Name -> class registries for predictors and suites, filled by decorators and entry points."""

from __future__ import annotations

import functools
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
#: (kind, name) -> where the registration came from: "module X" or "entry point G:N (dist V)"
_ORIGINS: dict[tuple[str, str], str] = {}
_conflicts: list[str] = []


class RegistryConflict(ValueError):
    """Two different classes registered under one name (two modules, or a module and a plugin)."""


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _same(a: type, b: type) -> bool:
    """The same class, or the same class object re-created by re-importing its module."""
    return a is b or _origin(a) == _origin(b)


def _add(kind: str, table: dict[str, type], key: str, cls: type, where: str) -> None:
    """Register ``cls`` as ``key``; a second, different class under the same name raises."""
    old = table.get(key)
    if old is not None and not _same(old, cls):
        first = _ORIGINS.get((kind, key), f"module {old.__module__}")
        raise RegistryConflict(f"{kind} name {key!r} is registered twice: {_origin(old)} (from "
                               f"{first}) and {_origin(cls)} (from {where}); rename one of them")
    table[key] = cls
    _ORIGINS.setdefault((kind, key), where)

T = TypeVar("T")


def register_predictor(name: str | None = None) -> Callable[[T], T]:
    """Class decorator: ``@register_predictor("my-baseline")`` makes it runnable by name."""

    def deco(cls: T) -> T:
        key = name or getattr(cls, "name", "")
        if not key:
            raise ValueError(f"{cls!r} needs a name")
        if not getattr(cls, "name", ""):
            cls.name = key  # type: ignore[attr-defined]
        _add("predictor", _PREDICTORS, key, cls, f"module {cls.__module__}")  # type: ignore[arg-type]
        return cls

    return deco


def register_suite(name: str | None = None) -> Callable[[T], T]:
    """Class decorator: ``@register_suite("my-suite")``."""

    def deco(cls: T) -> T:
        key = name or getattr(cls, "name", "")
        if not key:
            raise ValueError(f"{cls!r} needs a name")
        _add("suite", _SUITES, key, cls, f"module {cls.__module__}")  # type: ignore[arg-type]
        return cls

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        if _conflicts:
            raise RegistryConflict("; ".join(_conflicts))
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
        except RegistryConflict as exc:
            _conflicts.append(str(exc))
        except Exception as exc:
            _load_errors[f"TRIADBENCH_PLUGINS:{mod}"] = f"{type(exc).__name__}: {exc}"
    for kind, group, table in (("predictor", PREDICTOR_GROUP, _PREDICTORS), ("suite", SUITE_GROUP, _SUITES)):
        for ep in entry_points(group=group):
            dist = getattr(ep, "dist", None)
            where = (f"entry point {group}:{ep.name} = {ep.value}"
                     + (f" (distribution {dist.metadata['Name']} {dist.version})" if dist else ""))
            try:
                obj = ep.load()
            except RegistryConflict as exc:
                _conflicts.append(f"{exc} [while loading {where}]")
                continue
            except Exception as exc:  # a broken plugin must not break the harness
                _load_errors[f"{group}:{ep.name}"] = f"{type(exc).__name__}: {exc}"
                continue
            if isinstance(obj, type):
                try:
                    _add(kind, table, ep.name, obj, where)
                except RegistryConflict as exc:
                    _conflicts.append(str(exc))
                    continue
                _ORIGINS[(kind, ep.name)] = where
                if not getattr(obj, "name", ""):
                    obj.name = ep.name
    if _conflicts:
        raise RegistryConflict("; ".join(_conflicts))


@functools.lru_cache(maxsize=1)
def _packages() -> dict:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _distribution(module: str) -> dict[str, str]:
    """The installed distribution (name and version) that provides ``module``, if any."""
    from importlib.metadata import PackageNotFoundError, version

    top = module.split(".")[0]
    names = _packages().get(top, [])
    if not names and top in ("benchmark", "baselines"):
        names = ["triadbench"]
    for name in names:
        try:
            return {"distribution": name, "version": version(name)}
        except PackageNotFoundError:
            continue
    return {"distribution": "", "version": ""}


def plugins() -> list[dict[str, str]]:
    """Every registered predictor and suite: its class, module, origin and distribution version
    (written to each run's manifest)."""
    _load()
    out = []
    for kind, table in (("predictor", _PREDICTORS), ("suite", _SUITES)):
        for name, cls in sorted(table.items()):
            out.append({"kind": kind, "name": name, "class": _origin(cls), "module": cls.__module__,
                        "origin": _ORIGINS.get((kind, name), f"module {cls.__module__}"),
                        **_distribution(cls.__module__)})
    return out


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
