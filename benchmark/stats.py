"""Confidence intervals: every reported mean comes with one."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of ``values`` (NaNs dropped).

    Returns ``(mean, low, high)``; with fewer than two values the interval is the mean itself
    (one value) or NaN (none).

    Example
    -------
    >>> m, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    >>> lo <= m <= hi
    True
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if v.size == 1:
        return m, m, m
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 4_000_000 // v.size)
    for s in range(0, n_boot, step):
        c = min(step, n_boot - s)
        means[s : s + c] = v[rng.integers(0, v.size, size=(c, v.size))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return m, float(lo), float(hi)


def paired_difference_ci(a, b, **kw) -> tuple[float, float, float]:
    """Interval of mean(a - b) for paired per-episode scores (same episodes, same order)."""
    return bootstrap_ci(np.asarray(a, float) - np.asarray(b, float), **kw)
