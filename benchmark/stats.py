"""The report's statistics in one place: intervals over the independent unit, exact intervals for
proportions, Holm's correction, and how many more episodes an undecided claim would need.

Rules (docs/report.md, "Statistics"):

- The resampled unit is the *independent* one: when episodes share tasks (fewer distinct task ids
  than episodes) the bootstrap resamples tasks with all their episodes (cluster bootstrap);
  otherwise it resamples episodes. Anything measured several times per episode (shots, queries)
  is averaged per episode first.
- Proportions get exact (Clopper-Pearson) or Wilson intervals; an interval is never of zero width
  when the values are proportions or differences of proportions.
- No claim rests on fewer than :data:`MIN_UNITS` independent units.
- Claims are decided on Holm-adjusted p-values (cluster-robust t test) *and* an interval that
  excludes zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: the fewest independent units (tasks or episodes) a claim may rest on
MIN_UNITS = 20
#: family-wise error rate of the answer section's claims (Holm)
ALPHA = 0.05
#: the power the "needs about N more episodes" estimate aims for
POWER = 0.8


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of ``values`` (NaNs dropped), resampling values.

    Returns ``(mean, low, high)``; with fewer than two values the interval is the mean itself
    (one value) or NaN (none).

    Example
    -------
    >>> m, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    >>> lo <= m <= hi
    True
    """
    return cluster_bootstrap_ci(values, None, n_boot=n_boot, level=level, seed=seed)


def cluster_labels(task_ids: Sequence | None, n: int) -> tuple[np.ndarray, str]:
    """Integer cluster labels for ``n`` per-episode values, and the unit's name.

    Episodes are clustered by task when they share tasks (fewer distinct non-empty task ids than
    episodes); otherwise each episode is its own unit.

    >>> cluster_labels(["a", "a", "b"], 3)[1], cluster_labels(["a", "b", "c"], 3)[1]
    ('tasks', 'episodes')
    """
    if task_ids is not None:
        t = np.asarray([str(x) for x in task_ids], dtype=object)
        if len(t) == n and n and all(x not in ("", "nan", "None") for x in t):
            codes, uniq = _factorize(t)
            if len(uniq) < n:
                return codes, "tasks"
    return np.arange(n), "episodes"


def _factorize(a: np.ndarray) -> tuple[np.ndarray, list]:
    seen: dict = {}
    codes = np.fromiter((seen.setdefault(x, len(seen)) for x in a), dtype=int, count=len(a))
    return codes, list(seen)


def _cluster_sums(v: np.ndarray, clusters: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if clusters is None:
        return v, np.ones_like(v)
    codes, _ = _factorize(np.asarray(clusters, dtype=object))
    return np.bincount(codes, weights=v), np.bincount(codes).astype(float)


def value_bounds(v: np.ndarray) -> tuple[float, float] | None:
    """(0, 1) for proportions, (-1, 1) for differences of proportions, else None (unbounded)."""
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    if v.min() >= 0 and v.max() <= 1:
        return (0.0, 1.0)
    if v.min() >= -1 and v.max() <= 1 and np.all(np.isin(v, (-1.0, 0.0, 1.0))):
        return (-1.0, 1.0)
    return None


def degenerate_interval(c: float, n: int, bounds: tuple[float, float], level: float = 0.95) -> tuple[float, float]:
    """An interval for a mean observed constant (every one of ``n`` units equals ``c``): the
    Clopper-Pearson bound on the fraction of units that equal ``c``, the rest at the bounds."""
    p_lo = ((1 - level) / 2) ** (1.0 / max(n, 1))  # exact lower bound of a proportion n/n
    lo, hi = bounds
    return c * p_lo + lo * (1 - p_lo), c * p_lo + hi * (1 - p_lo)


def cluster_bootstrap_ci(values, clusters=None, n_boot: int = 2000, level: float = 0.95,
                         seed: int = 0, bounds: tuple[float, float] | None | str = "auto") -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap interval, resampling whole clusters.

    ``clusters`` labels each value's cluster (e.g. its task); None resamples values one by one.
    Each resample draws as many clusters as there are, with replacement, and takes the mean of
    all their values. Unclustered 0/1 outcomes get the exact Clopper-Pearson interval instead;
    proportions never get a zero-width interval (see :func:`degenerate_interval`);
    ``bounds`` gives the values' range: "auto" reads it off the values (:func:`value_bounds`), a
    pair states it (a difference of proportions that happens to be 0 everywhere: (-1, 1)), None
    says the values are unbounded (a constant then keeps its zero-width interval).

    >>> m, lo, hi = cluster_bootstrap_ci([1.0, 1.1, 5.0, 5.2], ["a", "a", "b", "b"])
    >>> lo <= m <= hi
    True
    """
    v = np.asarray(values, dtype=float)
    keep = ~np.isnan(v)
    v = v[keep]
    cl = None if clusters is None else np.asarray(clusters, dtype=object)[keep]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    sums, sizes = _cluster_sums(v, cl)
    g = len(sums)
    if g == 1:
        lo = hi = m
    else:
        rng = np.random.default_rng(seed)
        means = np.empty(n_boot)
        step = max(1, 4_000_000 // g)
        for s in range(0, n_boot, step):
            c = min(step, n_boot - s)
            idx = rng.integers(0, g, size=(c, g))
            means[s: s + c] = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
        a = (1 - level) / 2
        lo, hi = (float(x) for x in np.quantile(means, [a, 1 - a]))
    if cl is None and isinstance(bounds, str) and np.isin(v, (0.0, 1.0)).all():
        # 0/1 outcomes, one per unit: the exact binomial interval, whatever n
        return (m,) + proportion_ci(int(v.sum()), int(v.size), level)
    if lo == hi:
        b = value_bounds(v) if isinstance(bounds, str) else bounds
        if b is not None:
            lo, hi = degenerate_interval(m, g, b, level)
    return m, lo, hi


def paired_difference_ci(a, b, **kw) -> tuple[float, float, float]:
    """Interval of mean(a - b) for paired per-episode scores (same episodes, same order)."""
    return bootstrap_ci(np.asarray(a, float) - np.asarray(b, float), **kw)


def proportion_ci(k: int, n: int, level: float = 0.95, method: str = "clopper-pearson") -> tuple[float, float]:
    """Exact (Clopper-Pearson) or Wilson interval of a proportion k/n; never of zero width.

    >>> lo, hi = proportion_ci(0, 10)
    >>> lo == 0.0 and 0.3 < hi < 0.31
    True
    """
    from scipy.stats import beta, norm

    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= k <= n:
        raise ValueError(f"proportion_ci: k={k} outside 0..n={n}")
    a = 1 - level
    if method == "clopper-pearson":
        lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
        hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
        return lo, hi
    if method == "wilson":
        z = float(norm.ppf(1 - a / 2))
        p = k / n
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
        return max(0.0, centre - half), min(1.0, centre + half)
    raise ValueError(f"proportion_ci: unknown method {method!r} (clopper-pearson or wilson)")


def cluster_t_test(values, clusters=None) -> tuple[float, float]:
    """Two-sided p-value of mean = 0 with a cluster-robust standard error (t with G-1 degrees of
    freedom, G clusters), and the standard deviation of the per-unit means (for power estimates).

    Without clusters this is the one-sample t test.
    """
    from scipy.stats import t as tdist

    v = np.asarray(values, dtype=float)
    keep = ~np.isnan(v)
    v = v[keep]
    cl = None if clusters is None else np.asarray(clusters, dtype=object)[keep]
    sums, sizes = _cluster_sums(v, cl)
    g = len(sums)
    if g < 2:
        return float("nan"), float("nan")
    m = v.sum() / sizes.sum()
    resid = sums - sizes * m
    se = math.sqrt(g / (g - 1) * float((resid ** 2).sum())) / sizes.sum()
    sd = float(np.std(sums / sizes, ddof=1))
    if se == 0:
        return (1.0 if m == 0 else 0.0), sd
    return float(2 * tdist.sf(abs(m / se), g - 1)), sd


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values (NaNs are not tests: they stay NaN and do not count).

    >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def units_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Independent units a two-sided test at ``alpha`` needs to detect ``effect`` with ``power``,
    given the per-unit standard deviation ``sd`` (normal approximation); inf when effect is 0."""
    from scipy.stats import norm

    if not np.isfinite(sd) or not np.isfinite(effect):
        return float("nan")
    if effect == 0:
        return float("inf")
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return float(math.ceil((z * sd / abs(effect)) ** 2))


def heavy_tailed(values) -> bool:
    """True when a few large values dominate the mean: it differs from the 10%-trimmed mean by more
    than a quarter (e.g. OLS errors near shots = d). The report then also shows the median."""
    from scipy.stats import trim_mean

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 10:
        return False
    t = float(trim_mean(v, 0.1))
    return abs(float(v.mean()) - t) > 0.25 * max(abs(t), 1e-12)


def robust_summary(values) -> dict:
    """Median and 10%-trimmed mean, for heavy-tailed errors."""
    from scipy.stats import trim_mean

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"median": float("nan"), "trimmed_mean": float("nan")}
    return {"median": float(np.median(v)), "trimmed_mean": float(trim_mean(v, 0.1))}


@dataclass(frozen=True)
class Claim:
    """A mean effect (positive = better) over independent units, with its interval and test."""

    mean: float
    lo: float
    hi: float
    n: int            # independent units
    unit: str         # "episodes" or "tasks"
    n_episodes: int
    p: float          # unadjusted two-sided p-value (NaN when not tested: too few units)
    sd: float         # standard deviation of the per-unit means

    @property
    def tested(self) -> bool:
        return self.n >= MIN_UNITS and not np.isnan(self.p)

    def excludes_zero(self) -> int:
        """+1 / -1 when the interval lies above / below zero, else 0."""
        if np.isnan(self.lo) or np.isnan(self.hi):
            return 0
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0


def claim(values, task_ids: Sequence | None = None, n_boot: int = 2000, seed: int = 0,
          level: float = 0.95, bounds: tuple[float, float] | None | str = "auto") -> Claim:
    """A :class:`Claim` on per-episode ``values``, clustered by task when episodes share tasks.

    Below :data:`MIN_UNITS` units the p-value is NaN: the claim is shown, never decided.
    """
    v = np.asarray(values, dtype=float)
    keep = ~np.isnan(v)
    v = v[keep]
    tids = None if task_ids is None else np.asarray(list(task_ids), dtype=object)[keep]
    labels, unit = cluster_labels(tids, len(v))
    clusters = labels if unit == "tasks" else None
    m, lo, hi = cluster_bootstrap_ci(v, clusters, n_boot=n_boot, level=level, seed=seed, bounds=bounds)
    n = int(len(np.unique(labels))) if len(v) else 0
    p, sd = cluster_t_test(v, clusters) if n >= 2 else (float("nan"), float("nan"))
    if n < MIN_UNITS:
        p = float("nan")
    return Claim(m, lo, hi, n, unit, int(len(v)), p, sd)
