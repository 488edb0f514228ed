"""Batched template-dmmse vs a plain per-episode loop, on a pool of 2^14 tasks.

Prints both timings and the speed-up; checks that both give the same predictions.
Run: .venv/bin/python perf/template_dmmse.py [--episodes 10000] [--pool 16384]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from baselines.template_regression import TemplateDMMSE
from benchmark.suites.linear_regression import LinearRegression


def loop_dmmse(W: np.ndarray, noise: float, X: np.ndarray, y: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The obvious implementation: one episode at a time, residuals against every pool task."""
    out = np.empty(q.shape[:2])
    for b in range(len(X)):
        resid = y[b][:, None] - X[b] @ W.T                 # (k, M)
        logp = -(resid ** 2).sum(axis=0) / (2 * noise)
        p = np.exp(logp - logp.max())
        p /= p.sum()
        out[b] = q[b] @ (p @ W)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--episodes", type=int, default=10_000)
    ap.add_argument("--pool", type=int, default=2 ** 14)
    ap.add_argument("--shots", type=int, default=8)
    args = ap.parse_args()
    suite = LinearRegression(pool_size=args.pool)
    pool = suite.pool()
    ev = suite.episodes("novel", args.shots, args.episodes, seed=0)
    b = ev.batch

    t0 = time.perf_counter()
    pred = TemplateDMMSE().fit(pool)
    batched = pred.predict(b)
    t_batched = time.perf_counter() - t0

    t0 = time.perf_counter()
    looped = loop_dmmse(pool.weights, suite.params["noise"], b.support_x, b.support_y, b.query_x)
    t_loop = time.perf_counter() - t0

    err = float(np.max(np.abs(batched - looped)))
    print(f"template-dmmse, pool {args.pool}, {args.episodes} episodes, shots {args.shots}")
    print(f"  per-episode loop : {t_loop:8.3f} s")
    print(f"  batched (fit+predict): {t_batched:8.3f} s")
    print(f"  speed-up         : {t_loop / t_batched:8.1f}x   (max |difference| {err:.2e})")
    if err > 1e-6:
        raise SystemExit("batched and looped predictions disagree")


if __name__ == "__main__":
    main()
