"""What produced a cell: code fingerprints, data fingerprints, versions, parameters.

A cell's provenance is computed when the run is planned and stored in the cell file's header
(see :mod:`benchmark.rundir`). On a rerun, a cell whose stored provenance differs in one of the
:data:`COMPARED` fields is recomputed; the package version and the git commit are recorded for the
reader but not compared (a commit that touches no relevant file must not redo a whole grid).

Optional hooks a plugin may define (both return paths of files or folders; folders are hashed
file by file):

- ``Predictor.data_files(self, suite_params) -> list[Path]``: files ``fit``/``predict`` load
  (checkpoints, model files), given the suite parameters of the run;
- ``Suite.data_files(self) -> list[Path]``: files the suite reads (fact lists, task folders).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

#: provenance fields whose change makes a stored cell stale
COMPARED = ("format", "predictor_class", "predictor_source", "predictor_params",
            "predictor_data", "suite_class", "suite_source", "suite_version", "suite_params",
            "suite_data")
#: harness modules whose edits do not change any number (not part of code fingerprints)
NEUTRAL_MODULES = {"benchmark.registry", "benchmark.paths", "benchmark.predictor",
                   "benchmark.provenance", "benchmark.rundir", "benchmark.runner",
                   "benchmark.executors", "benchmark.cli", "benchmark.config"}
PROVENANCE_FORMAT = 1
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


# -- files and folders ------------------------------------------------------------------------
def file_hash(path: Path) -> str:
    """sha256 of a file's bytes, cached per (path, size, mtime) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def path_fingerprint(path: str | Path) -> str:
    """A file's hash; a folder's hash over its files' relative names and hashes; 'missing'."""
    p = Path(path)
    if p.is_file():
        return file_hash(p)[:20]
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file() and "__pycache__" not in q.parts):
            h.update(f"{f.relative_to(p).as_posix()}:{file_hash(f)}\n".encode())
        return h.hexdigest()[:20]
    return "missing"


def _label(path: Path) -> str:
    """A location-independent name for a data path (a moved checkout must not redo a grid)."""
    from benchmark.paths import data_dir

    p = Path(path).resolve()
    for root, tag in ((data_dir().resolve(), "data"), (Path(__file__).resolve().parent.parent, "")):
        try:
            rel = p.relative_to(root).as_posix()
            return f"{tag}/{rel}" if tag else rel
        except ValueError:
            continue
    return "/".join(p.parts[-3:])


def data_fingerprint(paths: Iterable[str | Path] | None) -> dict[str, str]:
    """{path: fingerprint} for the paths a hook returned (empty when there is no hook)."""
    return {_label(Path(p)): path_fingerprint(p) for p in (paths or [])}


# -- code -------------------------------------------------------------------------------------
def _module_file(name: str) -> Path | None:
    mod = sys.modules.get(name)
    if mod is None:
        try:
            mod = importlib.import_module(name)
        except Exception:
            return None
    f = getattr(mod, "__file__", None)
    return Path(f) if f and f.endswith(".py") else None


def _project_imports(module: Any) -> set[str]:
    """Modules of the same top-level package that ``module`` uses by name (one level deep)."""
    top = module.__name__.split(".")[0]
    tops = {top, "benchmark"} if top == "baselines" else {top}
    out = set()
    for value in vars(module).values():
        name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.split(".")[0] in tops and name not in NEUTRAL_MODULES:
            out.add(name)
    return out


@functools.lru_cache(maxsize=None)
def _source_fingerprint_cached(cls: type) -> tuple[str, tuple[str, ...]]:
    names: set[str] = set()
    for base in cls.__mro__:
        if base is object or base.__module__ in NEUTRAL_MODULES or base.__module__ == "builtins":
            continue
        names.add(base.__module__)
        mod = sys.modules.get(base.__module__)
        if mod is not None:
            names |= _project_imports(mod)
    h = hashlib.sha256()
    used = []
    for name in sorted(names):
        f = _module_file(name)
        if f is None or not f.exists():
            continue
        used.append(name)
        h.update(f"{name}:{file_hash(f)}\n".encode())
    return h.hexdigest()[:20], tuple(used)


def source_fingerprint(cls: type) -> str:
    """Hash of the source files of ``cls``'s module, its base classes' modules and the project
    modules they use directly (harness plumbing excluded; see :data:`NEUTRAL_MODULES`)."""
    return _source_fingerprint_cached(cls)[0]


def source_modules(cls: type) -> list[str]:
    """The modules :func:`source_fingerprint` hashes."""
    return list(_source_fingerprint_cached(cls)[1])


def clear_caches() -> None:
    """Forget cached hashes (tests that edit a source file or a checkpoint in place)."""
    _FILE_HASHES.clear()
    _source_fingerprint_cached.cache_clear()


# -- versions ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """triadbench's version, git commit and whether the working tree has uncommitted changes."""
    from benchmark import __version__

    root = Path(__file__).resolve().parent.parent
    out = {"version": __version__, "commit": "unknown", "dirty": None}
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                           cwd=root, timeout=10)
        if r.returncode == 0 and r.stdout.strip():
            out["commit"] = r.stdout.strip()
            s = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "benchmark", "baselines"], capture_output=True, text=True,
                               cwd=root, timeout=10)
            out["dirty"] = bool(s.stdout.strip()) if s.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


# -- one cell ---------------------------------------------------------------------------------
def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _hook(obj: Any, name: str, *args: Any) -> list:
    fn = getattr(obj, name, None)
    if fn is None:
        return []
    paths = fn(*args)
    return list(paths or [])


@functools.lru_cache(maxsize=256)
def _suite_part(suite_cls: type, params: str) -> tuple[tuple[str, Any], ...]:
    suite = suite_cls(**json.loads(params))
    return (("suite_class", f"{suite_cls.__module__}.{suite_cls.__qualname__}"),
            ("suite_source", source_fingerprint(suite_cls)),
            ("suite_version", str(getattr(suite_cls, "version", ""))),
            ("suite_params", canonical(suite.params)),
            ("suite_data", data_fingerprint(_hook(suite, "data_files"))))


@functools.lru_cache(maxsize=1024)
def _predictor_part(pred_cls: type, predictor_params: str, suite_params: str) -> tuple[tuple[str, Any], ...]:
    pred = pred_cls(**json.loads(predictor_params))
    return (("predictor_class", f"{pred_cls.__module__}.{pred_cls.__qualname__}"),
            ("predictor_source", source_fingerprint(pred_cls)),
            ("predictor_params", predictor_params),
            ("predictor_data", data_fingerprint(_hook(pred, "data_files", json.loads(suite_params)))))


def cell_provenance(cell: Any) -> dict:
    """The provenance record of a planned cell (see :data:`COMPARED` for what is checked)."""
    from benchmark.registry import predictor_class, suite_class

    scls = suite_class(cell.suite)
    record = {"format": PROVENANCE_FORMAT, **dict(_suite_part(scls, cell.params))}
    record.update(dict(_predictor_part(predictor_class(cell.predictor), cell.predictor_params,
                                       record["suite_params"])))
    record["code"] = code_version()
    return record


def clear_all() -> None:
    """Drop the per-class caches (file hashes stay: they are keyed on size and mtime)."""
    _source_fingerprint_cached.cache_clear()
    _suite_part.cache_clear()
    _predictor_part.cache_clear()


def environment_note() -> dict:
    """Where the provenance was computed (for the manifest)."""
    return {"pid": os.getpid(), **code_version()}
