"""Aggregation for the report: load and merge runs, grouped means with bootstrap intervals.

Every number the report shows comes from here, so that a figure's CSV and the table beside it
agree. Intervals are percentile-bootstrap intervals over episodes, vectorised across groups.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from benchmark.stats import claim, degenerate_interval, heavy_tailed, value_bounds

#: columns that identify one scored episode; two runs holding the same key hold the same cell
ROW_KEY = ["suite", "suite_config", "predictor", "predictor_params", "split", "shots", "seed",
           "episode_id", "task_id", "status"]
NUMERIC = {"shots": int, "seed": int, "score": float, "fit_seconds": float, "predict_seconds": float}
#: one episode (the same points at every shot count)
PAIR_KEY = ["suite", "suite_config", "split", "seed", "episode_id"]
SPLIT_ORDER = ["memorized", "seen-task", "novel", "ood", "novel-orthogonal"]
FAMILY_ORDER = ["lookup", "template", "in-context", "fine-tune", "reference"]
MAX_BOOT = 2000
#: cap on resamples x group size per grouped bootstrap (keeps a 300k-row report to seconds)
BOOT_WORK = 400_000_000


def read_results(path: Path) -> pd.DataFrame:
    """One run's ``results.csv``, every column as text except the numeric ones."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results.csv (is {path.parent} a run directory?)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("suite", "split", "predictor", "shots", "score", "status") if c not in df]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    for col, cast in NUMERIC.items():
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")  # "" is NaN
    df["shots"] = df["shots"].astype(int)
    if "seed" in df:
        df["seed"] = df["seed"].fillna(0).astype(int)
    if "updates_weights" in df:
        df["updates_weights"] = df["updates_weights"].str.lower().eq("true")
    for col in ROW_KEY + ["family", "metric"]:
        if col not in df:
            df[col] = ""
    return df


def read_manifest(run: Path) -> dict:
    """A run's manifest (empty dict when absent, so a bare results.csv still reports)."""
    p = Path(run) / "manifest.json"
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not valid JSON ({exc})") from None


def load_runs(runs: Sequence[Path]) -> tuple[pd.DataFrame, list[dict]]:
    """Merge the runs' rows, dropping cells that appear in more than one run (first run wins)."""
    if not runs:
        raise ValueError("build_report: no run directories given")
    frames, manifests = [], []
    for r in runs:
        df = read_results(Path(r) / "results.csv")
        df["run"] = str(r)
        frames.append(df)
        manifests.append({"run": str(r), **read_manifest(r)})
    try:  # the checked merge (refuses runs that disagree on a row), where present
        from benchmark.rundir import MERGE_KEY, merge_runs
    except ImportError:
        merge_runs, MERGE_KEY = None, None
    if merge_runs is not None:
        df = merge_runs(frames, [str(r) for r in runs])
    else:
        df = pd.concat(frames, ignore_index=True)
    # merge_runs keeps one row per MERGE_KEY and status: unique on ROW_KEY too when that is coarser
    if MERGE_KEY is None or not set(MERGE_KEY + ["status"]) <= set(ROW_KEY):
        df = df.drop_duplicates(ROW_KEY, keep="first").reset_index(drop=True)
    df["setting"] = setting_labels(df)
    # an integer per episode: pairing on it is far cheaper than on five text columns
    df["ep"] = df.groupby(PAIR_KEY, sort=False).ngroup()
    pairs = df[["suite", "metric"]].drop_duplicates().dropna()
    for suite, metric in sorted(pairs.itertuples(index=False, name=None)):  # as groupby's sorted groups
        d = direction_from_metric(metric)
        if d is not None and suite not in DIRECTIONS:
            DIRECTIONS[suite] = d
    higher_is_better.cache_clear()
    return df, manifests


def setting_labels(df: pd.DataFrame) -> pd.Series:
    """Per row, the suite parameters that vary within its suite (e.g. ``pool_size=16``)."""
    out = pd.Series("", index=df.index, dtype=object)
    for suite, g in df[[c for c in ("suite", "suite_config", "task_id") if c in df]].groupby("suite"):
        configs = {c: json.loads(c) if c else {} for c in g["suite_config"].unique()}
        keys = sorted({k for cfg in configs.values() for k in cfg})
        varying = [k for k in keys if len({json.dumps(cfg.get(k), sort_keys=True)
                                           for cfg in configs.values()}) > 1]
        labels = {c: ", ".join(f"{k}={cfg.get(k)}" for k in varying) for c, cfg in configs.items()}
        base = g["suite_config"].map(labels)
        group = _task_group(suite)
        if group is not None and "task_id" in g:  # e.g. strings: one setting per task kind
            kinds = g["task_id"].fillna("").astype(str).map(lambda t: group(t) if t else "")
            base = pd.Series([", ".join(x for x in (b, f"kind={k}" if k else "") if x)
                              for b, k in zip(base, kinds)], index=g.index)
        out[g.index] = base
    return out


def _task_group(suite: str):
    """A suite's ``task_group(task_id)`` hook, if it declares one, else None."""
    try:
        from benchmark.registry import suite_class

        return getattr(suite_class(suite), "task_group", None)
    except KeyError:
        return None


def setting_order(values: Iterable[str]) -> list[str]:
    """Settings sorted numerically where they are numbers ("unlimited" last)."""

    def key(s: str):
        parts = []
        for item in s.split(", "):
            v = item.split("=", 1)[-1]
            try:
                parts.append((0, float(v), ""))
            except ValueError:
                parts.append((1, 0.0, v))
        return parts

    return sorted(set(values), key=key)


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df["score"].notna()]


# -- vectorised bootstrap ---------------------------------------------------------------------
def n_boot_for(total: int) -> int:
    """Resamples per group: MAX_BOOT, fewer for very large inputs (never under 200)."""
    return int(max(200, min(MAX_BOOT, BOOT_WORK // max(1, total))))


def grouped_bootstrap(df: pd.DataFrame, by: list[str], value: str = "score", level: float = 0.95,
                      seed: int = 0, n_boot: int | None = None, cluster: str | None = None) -> pd.DataFrame:
    """Mean, percentile-bootstrap interval and count of ``value`` for each group of ``by``.

    With ``cluster`` (a column, e.g. ``task_id``), a group whose rows share clusters (fewer
    distinct non-empty cluster values than rows) is resampled by cluster, all of a cluster's rows
    together; other groups row by row. ``n`` counts rows, ``units`` the independent units
    resampled and ``unit`` names them ("tasks" or "episodes"). Unclustered 0/1 outcomes get the
    exact Clopper-Pearson interval; proportions never get a zero-width interval
    (:func:`benchmark.stats.degenerate_interval`).

    Groups with the same number of units share one set of resampling weights (a B x G matrix of
    multinomial counts), so all their bootstrap means come from one matrix product: each group's
    interval is an ordinary (cluster) percentile bootstrap of its own values, at a small fraction
    of the cost of resampling every group separately (see ``perf/report_build.py``).

    Example
    -------
    >>> d = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 50, "score": np.r_[np.zeros(50), np.ones(50)]})
    >>> grouped_bootstrap(d, ["g"])[["g", "mean", "n"]].values.tolist()
    [['a', 0.0, 50], ['b', 1.0, 50]]
    """
    cols = by + ["mean", "lo", "hi", "n", "units", "unit"]
    keep = by + [value] + ([cluster] if cluster and cluster in df and cluster not in by else [])
    d = df[keep].dropna(subset=[value])
    if d.empty:
        return pd.DataFrame(columns=cols)
    d, gid, keys = _sorted_groups(d, by)
    v = d[value].to_numpy(float)
    sizes = np.bincount(gid)
    means = np.bincount(gid, weights=v) / sizes
    # independent units: clusters in groups that share them, rows elsewhere
    unit_code = np.arange(len(v))
    clustered = np.zeros(len(sizes), bool)
    if cluster and cluster in d:
        cv = d[cluster].fillna("").astype(str).to_numpy()
        valid = (cv != "") & (cv != "nan")
        cvc = pd.factorize(cv)[0].astype(np.int64)
        code = pd.factorize(gid.astype(np.int64) * (int(cvc.max()) + 1) + cvc)[0]  # (group, cluster) pairs
        n_cl = pd.Series(code).groupby(gid).nunique().to_numpy()
        all_valid = np.bincount(gid, weights=valid.astype(float)) == sizes
        clustered = all_valid & (n_cl < sizes)
        unit_code = np.where(clustered[gid], code, len(v) + np.arange(len(v)))
    ukey = pd.DataFrame({"g": gid, "u": unit_code, "v": v})
    units = ukey.groupby(["g", "u"], sort=True).agg(s=("v", "sum"), c=("v", "size")).reset_index()
    ug = units["g"].to_numpy()
    usum, ucnt = units["s"].to_numpy(float), units["c"].to_numpy(float)
    n_units = np.bincount(ug, minlength=len(sizes))
    ustart = np.r_[0, np.cumsum(n_units)[:-1]]
    B = n_boot or n_boot_for(len(v))
    rng = np.random.default_rng(seed)
    a = (1 - level) / 2
    lo, hi = means.copy(), means.copy()
    for g_n in np.unique(n_units):
        if g_n < 2:
            continue  # one unit: the interval is its value (widened below for proportions)
        groups = np.flatnonzero(n_units == g_n)
        pos = ustart[groups][:, None] + np.arange(g_n)
        S, C = usum[pos], ucnt[pos]                                   # (G_n, g_n)
        idx = rng.integers(0, g_n, size=(B, g_n))
        counts = np.zeros((B, g_n))
        np.add.at(counts, (np.repeat(np.arange(B), g_n), idx.ravel()), 1.0)
        boot = (S @ counts.T) / (C @ counts.T)                        # (G_n, B) bootstrap means
        lo[groups], hi[groups] = np.quantile(boot, [a, 1 - a], axis=1)
    binary = np.bincount(gid, weights=(~np.isin(v, (0.0, 1.0))).astype(float), minlength=len(sizes)) == 0
    exact = np.flatnonzero(binary & ~clustered)
    if len(exact):  # 0/1 outcomes, one per unit: the exact binomial (Clopper-Pearson) interval
        from scipy.stats import beta

        k = np.rint(means[exact] * sizes[exact])
        nn = sizes[exact].astype(float)
        with np.errstate(invalid="ignore"):
            lo[exact] = np.where(k > 0, beta.ppf(a, np.maximum(k, 1e-12), nn - k + 1), 0.0)
            hi[exact] = np.where(k < nn, beta.ppf(1 - a, k + 1, np.maximum(nn - k, 1e-12)), 1.0)
    flat = np.flatnonzero(lo == hi)
    if len(flat):
        vmin = pd.Series(v).groupby(gid).min().to_numpy()
        vmax = pd.Series(v).groupby(gid).max().to_numpy()
        for g in flat:
            b = value_bounds(np.array([vmin[g], vmax[g]]))
            if b is not None and (b == (0.0, 1.0) or vmin[g] == vmax[g]):
                lo[g], hi[g] = degenerate_interval(means[g], int(n_units[g]), b, level)
    out = keys.copy()
    out["mean"], out["lo"], out["hi"], out["n"] = means, lo, hi, sizes
    out["units"] = n_units
    out["unit"] = np.where(clustered, "tasks", "episodes")
    return out


def _sorted_groups(d: pd.DataFrame, by: list[str]) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """``d`` sorted by ``by`` (stable), each row's group number (in that order) and the groups'
    keys: from each column's sorted codes, factorized once (sorting and grouping the text
    columns again each took as long)."""
    codes = [pd.factorize(d[c], sort=True)[0] for c in by]
    if any((c < 0).any() for c in codes):  # a missing key: sorted and grouped as pandas does
        d = d.sort_values(by, kind="stable")
        return d, d.groupby(by, sort=False, observed=True).ngroup().to_numpy(), \
            d.drop_duplicates(by)[by].reset_index(drop=True)
    order = np.lexsort(codes[::-1])  # stable, first key first: as sort_values on several columns
    c = np.stack(codes)[:, order]
    start = np.r_[True, (c[:, 1:] != c[:, :-1]).any(axis=0)]
    return d.iloc[order], np.cumsum(start) - 1, d[by].iloc[order[start]].reset_index(drop=True)


def episode_means(df: pd.DataFrame, by: list[str], value: str = "score") -> pd.DataFrame:
    """Each episode's ``value`` averaged over its shot counts: the unit the intervals resample
    (or cluster, by the ``task_id`` kept beside it, when episodes share tasks)."""
    key = by + (["ep"] if "ep" in df else [c for c in PAIR_KEY if c not in by])
    agg = {value: (value, "mean")}
    if "task_id" in df and "task_id" not in key:
        agg["task_id"] = ("task_id", "first")
    return df.groupby(key, observed=True, sort=False).agg(**agg).reset_index()


# -- tables -----------------------------------------------------------------------------------
#: suite -> higher is better, filled from metric names by :func:`load_runs` (saves importing
#: every registered suite, and torch with them, just to read one class attribute)
DIRECTIONS: dict[str, bool] = {}
_LOWER = ("mse", "mae", "rmse", "error", "loss", "distance", "regret")
_HIGHER = ("acc", "accuracy", "exact", "match", "solved", "f1", "correct", "success")


def direction_from_metric(metric: str) -> bool | None:
    """True / False when the metric's name says higher / lower is better, else None."""
    words = [w for w in __import__("re").split(r"[^a-z0-9]+", str(metric).lower()) if w]
    if any(w in _LOWER for w in words):
        return False
    if any(w in _HIGHER for w in words):
        return True
    return None


@functools.lru_cache(maxsize=None)
def higher_is_better(suite: str) -> bool:
    """Whether the suite's metric is a score (True) or an error (False); unknown suites: error."""
    if suite in DIRECTIONS:
        return DIRECTIONS[suite]
    try:
        from benchmark.registry import suite_class

        return bool(getattr(suite_class(suite), "higher_is_better", False))
    except Exception:
        return False


def metric_label(suite: str, metric: str) -> str:
    """An axis label naming the measure and its direction."""
    if higher_is_better(suite):
        return f"score ({metric}, higher is better)"
    return f"error ({metric}, lower is better)"


def curves(df: pd.DataFrame) -> pd.DataFrame:
    """Score vs shots: mean and interval per suite, setting, split, predictor and shot count."""
    return grouped_bootstrap(ok_rows(df), ["suite", "setting", "split", "predictor", "shots"],
                             cluster="task_id")


def shot_label(shots: Iterable[int]) -> str:
    """``1-16`` for a contiguous run of shot counts, else ``2,4,8,16``."""
    s = sorted({int(x) for x in shots})
    if not s:
        return ""
    if len(s) > 2 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}-{s[-1]}"
    return ",".join(map(str, s))


def common_shot_grid(pos: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``pos`` restricted, per group of ``by`` minus the predictor, to the shot counts every
    predictor of the group was scored at, so that means over shots compare like with like
    (a predictor run at 2, 4, 8, 16 shots is not averaged over 1..16 beside one run at 1..16).
    Where the predictors share no shot count, each keeps its own. Adds a ``shots_used`` column."""
    group = [c for c in by if c != "predictor"]
    if pos.empty:
        return pos.assign(shots_used="")
    groups = pos.groupby(by, observed=True)
    grids = groups["shots"].agg(lambda x: frozenset(x.tolist()))
    common = grids.groupby(level=group, observed=True).agg(lambda s: frozenset.intersection(*s))
    own = grids.rename("own").reset_index()
    own = own.merge(common.rename("common").reset_index(), on=group)
    own["grid"] = [c if len(c) else o for o, c in zip(own["own"], own["common"])]
    own["shots_used"] = own["grid"].map(shot_label)
    # each row's group by number (the groups in grids' sorted order): a lookup table, not a merge
    gid = groups.ngroup().to_numpy()
    if (gid < 0).any():
        raise ValueError(f"common_shot_grid: rows with a missing {'/'.join(by)}")
    values = np.unique(pos["shots"].to_numpy())
    in_grid = np.array([[v in g for v in values] for g in own["grid"]], dtype=bool).reshape(len(own), -1)
    m = pos.reset_index(drop=True)
    m["shots_used"] = pd.array(own["shots_used"].to_numpy()[gid], dtype=own["shots_used"].dtype)
    return m[in_grid[gid, np.searchsorted(values, m["shots"].to_numpy())]]


def status_counts(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Errors and skips per group (a skipped cell counts once)."""
    c = df.assign(errors=df["status"].eq("error"), skipped=df["status"].eq("skipped"))
    return c.groupby(by, observed=True)[["errors", "skipped"]].sum().reset_index()


def not_applicable(df: pd.DataFrame, manifests: Sequence[dict]) -> pd.DataFrame:
    """Predictor x setting pairs with no scored row, and why (the skip message)."""
    rows = []
    for m in manifests:
        for s in m.get("not_applicable", []) or []:
            rows.append({"suite": s.get("suite", ""), "suite_config": s.get("suite_config", ""),
                         "predictor": s.get("predictor", ""), "reason": s.get("reason", "")})
    sk = df[df["status"] == "skipped"]
    scored = set(map(tuple, ok_rows(df[["suite", "suite_config", "predictor", "status", "score"]])[
        ["suite", "suite_config", "predictor"]].drop_duplicates().values))
    for (suite, cfg, pred), g in sk.groupby(["suite", "suite_config", "predictor"]):
        if (suite, cfg, pred) not in scored:
            rows.append({"suite": suite, "suite_config": cfg, "predictor": pred,
                         "reason": str(g["error"].iloc[0])})
    na = pd.DataFrame(rows, columns=["suite", "suite_config", "predictor", "reason"]).drop_duplicates()
    if len(na):
        known = df[["suite", "suite_config"]].drop_duplicates()
        labels = setting_labels(pd.concat([known, na[["suite", "suite_config"]]], ignore_index=True))
        na["setting"] = labels.iloc[len(known):].to_numpy()
    else:
        na["setting"] = []
    return na


def leaderboard(df: pd.DataFrame, manifests: Sequence[dict] = (),
                na: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per suite, setting, split and predictor: mean over shots >= 1 and at the largest shot count.

    Suites scored at one shot count only (e.g. ARC) get that count in both columns. Predictors
    that were not applicable get a row with ``status`` "not applicable" (shown as n/a) and the reason, never a score.
    ``na``: :func:`not_applicable` of the same rows and manifests, where the caller has it already.
    """
    ok = ok_rows(df)
    by = ["suite", "setting", "split", "predictor"]
    maxshot = ok.groupby(["suite", "setting"])["shots"].transform("max")
    pos = common_shot_grid(ok[(ok["shots"] >= 1) | (maxshot == 0)], by)
    em = episode_means(pos, by)
    over = grouped_bootstrap(em, by, seed=1, cluster="task_id").rename(columns={
        "mean": "mean_shots_ge1", "lo": "lo_shots_ge1", "hi": "hi_shots_ge1", "n": "n_shots_ge1",
        "units": "units_shots_ge1"})
    used = pos.groupby(by, observed=True)["shots_used"].first().reset_index()
    robust = em.groupby(by, observed=True)["score"].agg(
        median_shots_ge1="median", heavy_tailed=heavy_tailed).reset_index()
    over = over.merge(used, on=by, how="left").merge(robust, on=by, how="left")
    at = ok[ok["shots"] == maxshot]
    atmax = grouped_bootstrap(at, by, seed=2, cluster="task_id").rename(columns={
        "mean": "mean_max_shot", "lo": "lo_max_shot", "hi": "hi_max_shot", "n": "n_max_shot",
        "units": "units_max_shot", "unit": "unit_max_shot"})
    ms = at.groupby(by)["shots"].max().rename("max_shot").reset_index()
    meta = df.groupby("predictor").agg(family=("family", "first"),
                                       updates_weights=("updates_weights", "first")).reset_index()
    lb = over.merge(atmax, on=by, how="outer").merge(ms, on=by, how="left")
    lb = lb.merge(status_counts(df, by), on=by, how="left").merge(meta, on="predictor", how="left")
    lb["status"] = "ok"
    lb["reason"] = ""
    na = not_applicable(df, manifests) if na is None else na
    if len(na):
        splits = df.groupby(["suite", "setting"])["split"].unique()
        extra = []
        for _, r in na.iterrows():
            for sp in splits.get((r["suite"], r["setting"]), []):
                if not ((lb["suite"] == r["suite"]) & (lb["setting"] == r["setting"]) & (lb["split"] == sp)
                        & (lb["predictor"] == r["predictor"])).any():
                    extra.append({"suite": r["suite"], "setting": r["setting"], "split": sp,
                                  "predictor": r["predictor"], "status": "not applicable", "reason": r["reason"]})
        if extra:
            ex = pd.DataFrame(extra).drop_duplicates(["suite", "setting", "split", "predictor"])
            ex = ex.merge(meta, on="predictor", how="left")
            lb = pd.concat([lb, ex], ignore_index=True)
    lb["split_rank"] = lb["split"].map({s: i for i, s in enumerate(SPLIT_ORDER)}).fillna(99)
    sign = lb["suite"].map(lambda s: -1.0 if higher_is_better(s) else 1.0)
    lb["_sort"] = (lb["mean_shots_ge1"] * sign).fillna(np.inf)
    order = {s: i for i, s in enumerate(setting_order(lb["setting"]))}
    lb["_set"] = lb["setting"].map(order)
    lb = lb.sort_values(["suite", "_set", "split_rank", "_sort"]).drop(columns=["split_rank", "_sort", "_set"])
    cols = ["suite", "setting", "split", "predictor", "family", "updates_weights", "status",
            "shots_used", "mean_shots_ge1", "lo_shots_ge1", "hi_shots_ge1", "n_shots_ge1",
            "units_shots_ge1", "unit", "median_shots_ge1", "heavy_tailed", "max_shot",
            "mean_max_shot", "lo_max_shot", "hi_max_shot", "n_max_shot", "units_max_shot",
            "errors", "skipped", "reason"]
    return lb.reindex(columns=cols).reset_index(drop=True)


def family_summary(lb: pd.DataFrame) -> pd.DataFrame:
    """Per suite, setting, split and family: the family's best predictor (over shots >= 1)."""
    ok = lb[lb["status"] == "ok"].dropna(subset=["mean_shots_ge1"])
    rows = []
    for (suite, setting, split, fam), g in ok.groupby(["suite", "setting", "split", "family"]):
        best = g.loc[g["mean_shots_ge1"].idxmax() if higher_is_better(suite) else g["mean_shots_ge1"].idxmin()]
        rows.append({"suite": suite, "setting": setting, "split": split, "family": fam,
                     "predictors": len(g), "best": best["predictor"], "mean": best["mean_shots_ge1"],
                     "lo": best["lo_shots_ge1"], "hi": best["hi_shots_ge1"], "n": best["n_shots_ge1"]})
    out = pd.DataFrame(rows, columns=["suite", "setting", "split", "family", "predictors", "best",
                                      "mean", "lo", "hi", "n"])
    if len(out):
        out["_f"] = out["family"].map({f: i for i, f in enumerate(FAMILY_ORDER)}).fillna(99)
        out["_s"] = out["split"].map({s: i for i, s in enumerate(SPLIT_ORDER)}).fillna(99)
        order = {s: i for i, s in enumerate(setting_order(out["setting"]))}
        out["_set"] = out["setting"].map(order)
        out = out.sort_values(["suite", "_set", "_s", "_f"]).drop(columns=["_f", "_s", "_set"])
    return out.reset_index(drop=True)


# -- paired differences -----------------------------------------------------------------------
CLAIM_COLS = ["n", "unit", "n_episodes", "p", "sd"]


def _claim_fields(c) -> dict:
    return {"n": c.n, "unit": c.unit, "n_episodes": c.n_episodes, "p": c.p, "sd": c.sd}


def diff_bounds(scores: pd.Series) -> tuple[float, float] | None:
    """(-1, 1) when the scores are proportions (their differences then lie in [-1, 1]), else None."""
    v = pd.to_numeric(scores, errors="coerce").dropna()
    return (-1.0, 1.0) if len(v) and v.min() >= 0 and v.max() <= 1 else None


def shot_gain(df: pd.DataFrame, split: str = "novel") -> pd.DataFrame:
    """Per predictor: improvement from the fewest to the most shots on the same episodes.

    ``gain`` is signed so that positive means better (error falls or score rises). Only episodes
    scored at both shot counts count (never a difference of independent means); the interval
    resamples tasks when those episodes share tasks (:func:`benchmark.stats.claim`), and ``p`` is
    NaN (no claim) below :data:`benchmark.stats.MIN_UNITS` units.
    """
    ok = ok_rows(df[df["split"] == split])
    rows = []
    for (suite, setting, pred), g in ok.groupby(["suite", "setting", "predictor"]):
        lo_k, hi_k = g["shots"].min(), g["shots"].max()
        if lo_k == hi_k:
            continue
        pk = "ep" if "ep" in g else PAIR_KEY
        a = g[g["shots"] == lo_k].drop_duplicates(pk).set_index(pk)
        b = g[g["shots"] == hi_k].drop_duplicates(pk).set_index(pk)
        common = a.index.intersection(b.index)
        sign = 1.0 if higher_is_better(suite) else -1.0
        paired = len(common) >= 1
        rec = {"suite": suite, "setting": setting, "predictor": pred, "split": split,
               "from_shots": int(lo_k), "to_shots": int(hi_k),
               "score_from": float(a.loc[common, "score"].mean()) if paired else float(a["score"].mean()),
               "score_to": float(b.loc[common, "score"].mean()) if paired else float(b["score"].mean()),
               "paired": paired}
        if paired:
            diff = sign * (b.loc[common, "score"].to_numpy() - a.loc[common, "score"].to_numpy())
            c = claim(diff, a.loc[common, "task_id"] if "task_id" in a else None, n_boot=MAX_BOOT, seed=3,
                      bounds=diff_bounds(g["score"]))
            rec.update(gain=c.mean, lo=c.lo, hi=c.hi, **_claim_fields(c))
        else:  # no episode at both shot counts: nothing to pair, no claim
            rec.update(gain=np.nan, lo=np.nan, hi=np.nan, n=0, unit="episodes", n_episodes=0,
                       p=np.nan, sd=np.nan)
        rows.append(rec)
    return pd.DataFrame(rows, columns=["suite", "setting", "predictor", "split", "from_shots", "to_shots",
                                       "score_from", "score_to", "gain", "lo", "hi", "paired"] + CLAIM_COLS)


def _pair_columns(df: pd.DataFrame, value: str = "score") -> list[str]:
    """The columns a pairing needs: a run's rows have dozens, and every filter copies them all."""
    return [c for c in dict.fromkeys(("ep", *PAIR_KEY, "task_id", "predictor", "shots", "status", "score",
                                      value)) if c in df]


class ScoredRows:
    """A frame's scored rows (the columns a pairing needs), split once by suite, setting, split
    and predictor: many paired comparisons of one setting look their rows up here instead of
    filtering the whole frame each time. Pass it where :func:`paired_episodes` takes ``df``."""

    KEY = ["suite", "setting", "split", "predictor"]

    def __init__(self, df: pd.DataFrame, value: str = "score"):
        cols = _pair_columns(df, value)
        ok = ok_rows(df[list(dict.fromkeys(cols + self.KEY))])
        self.where = ok.groupby(self.KEY, sort=False, observed=True).indices
        self.ok = ok[cols]

    def pair(self, a: str, b: str, suite: str, setting: str, split: str) -> pd.DataFrame:
        """The rows of ``a`` and ``b`` in one suite setting and split, in the frame's order."""
        found = [self.where.get((suite, setting, split, p)) for p in dict.fromkeys((a, b))]
        found = [f for f in found if f is not None]
        pos = np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.intp)
        return self.ok.iloc[pos]


def paired_episodes(df: pd.DataFrame | ScoredRows, a: str, b: str, suite: str, setting: str,
                    split: str = "novel", value: str = "score") -> pd.DataFrame:
    """Per episode scored by both ``a`` and ``b``: their means over the *same* shot counts.

    Episodes are identical when their suite configuration, seed, split and episode id agree (the
    ``ep`` key). The shot grid is the set of shot counts >= 1 both predictors were scored at (all
    counts when the suite has only 0), and an episode counts only if both have every count of that
    grid. Columns: ep, task_id, a, b; ``attrs["shots"]`` holds the grid.
    """
    if isinstance(df, ScoredRows):
        ok = df.pair(a, b, suite, setting, split)
    else:
        cols = _pair_columns(df, value)
        ok = ok_rows(df.loc[(df["suite"] == suite) & (df["setting"] == setting) & (df["split"] == split)
                            & df["predictor"].isin([a, b]), cols])
    pk = ["ep"] if "ep" in ok else PAIR_KEY
    if ok.empty:
        return pd.DataFrame(columns=pk + ["task_id", "a", "b"])
    if ok["shots"].max() > 0:
        ok = ok[ok["shots"] >= 1]
    grid = sorted(set(ok.loc[ok["predictor"] == a, "shots"]) & set(ok.loc[ok["predictor"] == b, "shots"]))
    if pk == ["ep"] and a != b:
        out = _paired_means(ok, a, b, grid, value)
        out.attrs["shots"] = grid
        return out
    ok = ok[ok["shots"].isin(grid)].drop_duplicates(pk + ["predictor", "shots"])
    wide = ok.set_index(pk + ["predictor", "shots"])[value].unstack(["predictor", "shots"])
    need = [(p, k) for p in (a, b) for k in grid]
    if wide.empty or any(c not in wide.columns for c in need):
        out = pd.DataFrame(columns=pk + ["task_id", "a", "b"])
        out.attrs["shots"] = grid
        return out
    wide = wide[need].dropna()
    out = pd.DataFrame({"a": wide[[(a, k) for k in grid]].mean(axis=1),
                        "b": wide[[(b, k) for k in grid]].mean(axis=1)}).reset_index()
    tids = ok.drop_duplicates(pk).set_index(pk)["task_id"] if "task_id" in ok else None
    out["task_id"] = out.set_index(pk).index.map(tids) if tids is not None else ""
    out = out[pk + ["task_id", "a", "b"]]
    out.attrs["shots"] = grid
    return out


def _paired_means(ok: pd.DataFrame, a: str, b: str, grid: list, value: str) -> pd.DataFrame:
    """:func:`paired_episodes` of two predictors on the integer episode key, in arrays: per
    episode (ascending) with every shot of ``grid`` scored by both, each one's mean over the grid
    (the first row where an episode, predictor and shot count repeat). The same numbers as
    pivoting the frame, which cost most of the report's hundreds of comparisons."""
    empty = pd.DataFrame(columns=["ep", "task_id", "a", "b"])
    pred = ok["predictor"].to_numpy(dtype=object)
    shots = ok["shots"].to_numpy()
    col = np.searchsorted(np.asarray(grid, dtype=shots.dtype), shots) if grid else np.zeros(len(ok), int)
    sel = np.isin(shots, grid) & ((pred == a) | (pred == b))
    if not sel.any():
        return empty
    ep = ok["ep"].to_numpy()[sel]
    col, who = col[sel], (pred[sel] == b).astype(np.int64)  # 0: a, 1: b
    score = ok[value].to_numpy(dtype=float)[sel]
    eps, first, row = np.unique(ep, return_index=True, return_inverse=True)
    g = len(grid)
    cell = (row * 2 + who) * g + col
    _, keep = np.unique(cell, return_index=True)  # the first row of each cell, as drop_duplicates
    has = np.zeros((2, g), bool)
    has[who, col] = True
    if not has.all():
        return empty  # some predictor and shot count has no row at all
    wide = np.full(len(eps) * 2 * g, np.nan)
    wide[cell[keep]] = score[keep]
    wide = wide.reshape(len(eps), 2, g)
    full = ~np.isnan(wide).any(axis=(1, 2))
    tids = ok["task_id"].to_numpy(dtype=object)[sel][first] if "task_id" in ok else np.full(len(eps), "")
    return pd.DataFrame({"ep": eps[full], "task_id": tids[full],
                         "a": wide[full, 0].sum(axis=1) / g, "b": wide[full, 1].sum(axis=1) / g})


def paired_comparison(df: pd.DataFrame | ScoredRows, a: str, b: str, suite: str, setting: str,
                      split: str = "novel") -> dict | None:
    """mean(score_a - score_b) over identical episodes and shot counts (:func:`paired_episodes`),
    signed so positive = a better; None when they share no episode."""
    pe = paired_episodes(df, a, b, suite, setting, split)
    if pe.empty:
        return None
    sign = 1.0 if higher_is_better(suite) else -1.0
    c = claim(sign * (pe["a"] - pe["b"]).to_numpy(), pe["task_id"].tolist(), n_boot=MAX_BOOT, seed=5,
              bounds=diff_bounds(pd.concat([pe["a"], pe["b"]])))
    return {"a": a, "b": b, "diff": c.mean, "lo": c.lo, "hi": c.hi, **_claim_fields(c),
            "mean_a": float(pe["a"].mean()), "mean_b": float(pe["b"].mean()),
            "shots": shot_label(pe.attrs.get("shots", []))}


def two_sample(df_a: pd.DataFrame, df_b: pd.DataFrame, sign: float, seed: int = 0) -> dict:
    """sign * (mean_a - mean_b) of two independent samples of per-episode means (columns score,
    task_id), with a percentile interval from resampling each sample by its own unit (tasks when
    its episodes share tasks) and a Welch t test on the unit means. ``n`` is the smaller sample's
    number of units; ``p`` is NaN below :data:`benchmark.stats.MIN_UNITS`."""
    from scipy.stats import ttest_ind

    from benchmark.stats import MIN_UNITS, cluster_labels

    boots, units, unit_means, kinds = [], [], [], []
    rng = np.random.default_rng(seed)
    for d in (df_a, df_b):
        v = d["score"].to_numpy(float)
        labels, unit = cluster_labels(d["task_id"].tolist() if "task_id" in d else None, len(v))
        sums = np.bincount(labels, weights=v)
        cnt = np.bincount(labels).astype(float)
        g = len(sums)
        idx = rng.integers(0, g, size=(MAX_BOOT, g))
        boots.append(sums[idx].sum(1) / cnt[idx].sum(1))
        units.append(g)
        unit_means.append(sums / cnt)
        kinds.append(unit)
    diff = sign * (boots[0] - boots[1])
    lo, hi = (float(x) for x in np.quantile(diff, [0.025, 0.975]))
    m = float(sign * (df_a["score"].mean() - df_b["score"].mean()))
    n = int(min(units))
    b = diff_bounds(pd.concat([df_a["score"], df_b["score"]]))
    if lo == hi and b is not None:  # proportions never get a zero-width interval
        lo, hi = degenerate_interval(m, n, b)
    import warnings

    with warnings.catch_warnings():  # identical samples: the test says so through a NaN p-value
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(unit_means[0], unit_means[1], equal_var=False).pvalue) if n >= 2 else np.nan
    if n < MIN_UNITS or not np.isfinite(p):
        p = np.nan
    sd = float(np.sqrt((np.var(unit_means[0], ddof=1) + np.var(unit_means[1], ddof=1)) / 2)) if n >= 2 else np.nan
    return {"mean": m, "lo": lo, "hi": hi, "n": n, "p": p, "sd": sd,
            "unit": "tasks" if "tasks" in kinds else "episodes", "n_episodes": int(min(len(df_a), len(df_b)))}


def triad_points(df: pd.DataFrame, gain: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per predictor and setting: memorization gap and gain with demonstrations, both "positive = better".

    gap = (memorized - novel) score over shots >= 1, with errors negated so a positive gap means
    better on memorized episodes; gain = improvement on novel episodes from the fewest to the most
    shots (paired by episode). Intervals: independent (cluster) bootstrap of each split for the
    gap (different episodes), paired bootstrap for the gain.
    """
    ok = ok_rows(df)
    maxshot = ok.groupby(["suite", "setting"])["shots"].transform("max")
    pos = ok[(ok["shots"] >= 1) | (maxshot == 0)]
    by = ["suite", "setting", "predictor"]
    mem = episode_means(pos[pos["split"] == "memorized"], by)
    nov = episode_means(pos[pos["split"] == "novel"], by)
    gain = shot_gain(df, "novel") if gain is None else gain
    rows = []
    novg = dict(list(nov.groupby(by, sort=False)))
    for key, m in mem.groupby(by, sort=False):
        if key not in novg:
            continue
        n = novg[key]
        suite, setting, pred = key
        sign = 1.0 if higher_is_better(suite) else -1.0
        t = two_sample(m, n, sign, seed=6)
        g = gain[(gain["suite"] == suite) & (gain["setting"] == setting) & (gain["predictor"] == pred)]
        gv = g.iloc[0] if len(g) else None
        rows.append({"suite": suite, "setting": setting, "predictor": pred,
                     "gap": t["mean"], "gap_lo": t["lo"], "gap_hi": t["hi"], "gap_n": t["n"],
                     "gain": np.nan if gv is None else gv["gain"],
                     "gain_lo": np.nan if gv is None else gv["lo"],
                     "gain_hi": np.nan if gv is None else gv["hi"],
                     "n_memorized": int(len(m)), "n_novel": int(len(n))})
    out = pd.DataFrame(rows, columns=["suite", "setting", "predictor", "gap", "gap_lo", "gap_hi", "gap_n",
                                      "gain", "gain_lo", "gain_hi", "n_memorized", "n_novel"])
    meta = df.groupby("predictor").agg(family=("family", "first"),
                                       updates_weights=("updates_weights", "first")).reset_index()
    return out.merge(meta, on="predictor", how="left")


# -- the pool-size transition -----------------------------------------------------------------
def pool_value(v: str) -> float:
    """Pool size as a number; "unlimited" is +inf."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("inf")


TRANSITION_PREDICTORS = ("icl-transformer", "template-dmmse", "template-best", "template-mix",
                         "lookup", "ridge")


def _in_transition(names: pd.Series, predictors: Sequence[str]) -> pd.Series:
    """The listed predictors, plus labelled variants of the transformer (``icl-transformer-eq``:
    the equal-budget, multi-seed checkpoints)."""
    return names.isin(predictors) | names.astype(str).str.startswith("icl-transformer-")


def _seed_column(ok: pd.DataFrame) -> list[str]:
    """``["pool_seed"]`` when the rows span several pool seeds (each seed is its own point)."""
    return ["pool_seed"] if "pool_seed" in ok and ok["pool_seed"].nunique() > 1 else []


def transition(df: pd.DataFrame, suite: str, shots_at: Sequence[int] = (8, 16),
               predictors: Sequence[str] = TRANSITION_PREDICTORS) -> pd.DataFrame:
    """Error vs pool size: per split (novel, seen-task), predictor and pool size, the mean over
    shots 1..max and at the given shot counts (those present), with intervals.

    Only ``predictors`` are drawn (the transformer and its template and learner references), so
    that predictors run at a few pool sizes only do not draw misleading lines; when none of them
    is present, every predictor is.
    """
    ok = ok_rows(df[(df["suite"] == suite) & df["split"].isin(["novel", "seen-task"])])
    if ok["predictor"].isin(predictors).any():
        ok = ok[_in_transition(ok["predictor"], predictors)]
    if "pool_size" not in ok or ok["pool_size"].nunique() < 2:
        return pd.DataFrame()
    seeds = _seed_column(ok)  # several pool seeds: one row per seed, the figure shows the spread
    by = ["split", "predictor", "pool_size"] + seeds
    parts = []
    pos = ok[ok["shots"] >= 1]
    m = grouped_bootstrap(episode_means(pos, by), by, seed=8, cluster="task_id")
    m["measure"] = f"mean over shots 1..{int(ok['shots'].max())}"
    parts.append(m)
    for k in shots_at:
        sub = ok[ok["shots"] == k]
        if len(sub):
            g = grouped_bootstrap(sub, by, seed=9 + k, cluster="task_id")
            g["measure"] = f"at {k} shots"
            parts.append(g)
    out = pd.concat(parts, ignore_index=True)
    out["M"] = out["pool_size"].map(pool_value)
    return out[["split", "measure", "predictor", "pool_size"] + seeds + ["M", "mean", "lo", "hi", "n"]]


def json_rows(texts: Sequence) -> list:
    """``json.loads`` of each text, None where it fails. Flat lists without strings (no brackets
    or quotes inside) are parsed as one JSON array: the same values, without a call per row."""
    texts = list(texts)
    if all(isinstance(t, str) and t[:1] == "[" and t[-1:] == "]" and t.count("[") == 1
           and t.count("]") == 1 and '"' not in t for t in texts):
        try:  # each is valid on its own exactly when the array of them is
            return json.loads("[" + ",".join(texts) + "]")
        except ValueError:
            pass
    return [_json_or_none(t) for t in texts]


def _json_or_none(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _parse_predictions(s: pd.Series) -> np.ndarray:
    """JSON lists of equal length into a 2-D float array (rows that fail become NaN)."""
    vals = []
    width = None
    for a in json_rows(s):
        try:
            width = width or len(a)
            vals.append(a if len(a) == width else [np.nan] * width)
        except (TypeError, ValueError):
            vals.append(None)
    width = width or 1
    return np.array([v if v is not None else [np.nan] * width for v in vals], dtype=float)


def prediction_distance(df: pd.DataFrame, suite: str, subject: str = "icl-transformer",
                        others: Sequence[str] = ("template-mix", "template-dmmse", "ridge"),
                        per_episode: bool = False) -> pd.DataFrame:
    """Raventós et al.'s comparison: mean squared distance between ``subject``'s predictions and
    each of ``others``' on the same episodes, divided by d when the suite has one, over shots
    0..max_shots-1 (their definition: the prediction at each position of a max_shots-point
    prompt, 0..15 for K = 16).

    Each episode's distances are averaged over its shots first, and the interval resamples
    episodes (tasks, when episodes share them), never the episode x shot rows. Labelled variants
    ``{subject}-...`` (e.g. ``icl-transformer-eq``) are subjects too (column ``subject``); with
    several pool seeds each seed gets its own row (column ``pool_seed``). With ``per_episode``
    the per-episode distances are returned instead of the aggregate.
    """
    key = ["ep", "shots"] if "ep" in df else ["suite_config", "seed", "split", "shots", "episode_id"]
    ok = ok_rows(df[df["suite"] == suite])
    top = (pd.to_numeric(ok["max_shots"], errors="coerce").fillna(16)
           if "max_shots" in ok else ok["shots"].max() if len(ok) else 0)
    ok = ok[(ok["shots"] >= 0) & (ok["shots"] < top)]
    if not per_episode:
        ok = ok[ok["split"].isin(["novel", "seen-task"])]
    if "pool_size" not in ok and not per_episode:
        return pd.DataFrame()
    subjects = [s for s in dict.fromkeys(ok["predictor"])
                if s == subject or str(s).startswith(f"{subject}-")]
    seen: dict = {}  # each reference's rows and parsed predictions, shared by the subjects
    frames = [_distance_to_others(ok, key, s, others, per_episode, seen) for s in subjects]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _distance_to_others(ok: pd.DataFrame, key: list[str], subject: str, others: Sequence[str],
                        per_episode: bool, seen: dict | None = None) -> pd.DataFrame:
    """:func:`prediction_distance` for one subject (``seen``: the references' rows and parsed
    predictions, kept from the subjects before)."""
    seen = {} if seen is None else seen
    subj = ok[ok["predictor"] == subject].drop_duplicates(key)
    if subj.empty:
        return pd.DataFrame()
    ps = _parse_predictions(subj["prediction"])
    parts = []
    for other in others:
        if other not in seen:
            seen[other] = [ok[ok["predictor"] == other].drop_duplicates(key), None]
        oth = seen[other][0]
        if oth.empty:
            continue
        extra = [c for c in ("split", "setting", "pool_size", "pool_seed", "d", "task_id")
                 if c not in key and c in subj]
        j = subj[key + extra].reset_index(drop=True)
        j["_i"] = np.arange(len(j))
        o = oth[key].reset_index(drop=True)
        o["_o"] = np.arange(len(o))
        jj = j.merge(o, on=key)
        if jj.empty:
            continue
        if seen[other][1] is None:
            seen[other][1] = _parse_predictions(oth["prediction"])
        po = seen[other][1]
        a, b = ps[jj["_i"].to_numpy()], po[jj["_o"].to_numpy()]
        if a.shape[1] != b.shape[1]:
            continue
        dist = np.nanmean((a - b) ** 2, axis=1)
        if "d" in jj:
            dist = dist / pd.to_numeric(jj["d"], errors="coerce").fillna(1.0).to_numpy()
        jj["distance"] = dist
        jj["to"] = other
        parts.append(jj)
    if not parts:
        return pd.DataFrame()
    allp = pd.concat(parts, ignore_index=True)
    ep = ["ep"] if "ep" in allp else ["suite_config", "seed", "split", "episode_id"]
    by = [c for c in ("split", "setting", "pool_size", "pool_seed") if c in allp] + ["to"]
    agg = {"distance": ("distance", "mean")}
    if "task_id" in allp:
        agg["task_id"] = ("task_id", "first")
    per_ep = allp.groupby(by + ep, observed=True, sort=False).agg(**agg).reset_index()
    if per_episode:
        per_ep.insert(0, "subject", subject)
        return per_ep
    out = grouped_bootstrap(per_ep, ["split", "to", "pool_size"] + _seed_column(per_ep),
                            value="distance", seed=30, cluster="task_id")
    out["M"] = out["pool_size"].map(pool_value)
    out.insert(0, "subject", subject)
    return out


def checkpoint_cards(suite: str = "linear-regression") -> pd.DataFrame:
    """Training steps and wall time of the shipped in-context checkpoints, one row per pool size."""
    from benchmark.paths import data_dir

    root = data_dir() / "checkpoints" / suite
    rows = []
    for card in sorted(root.glob("pool-*/card.json")):
        try:
            c = json.loads(card.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        # a checkpoint trained in stages reports its whole history
        rows.append({"pool_size": card.parent.name.split("pool-", 1)[1],
                     "steps": c.get("total_steps", c.get("steps")),
                     "wall_seconds": c.get("total_wall_seconds", c.get("wall_seconds")), "card": str(card)})
    return pd.DataFrame(rows, columns=["pool_size", "steps", "wall_seconds", "card"])
