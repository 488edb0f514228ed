"""Time template-grids on the whole ARC-AGI-1 evaluation split against a no-early-exit search.

Both runs use the same library and the same pool ranking; the baseline checks every program on
every demonstration (no early exit, no shape pruning, no shared first-transform cache), the way
a naive per-program search would. Prints seconds and the ratio. Run: python perf/arc_template.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from baselines.grid_template import TemplateGrids, library, solve  # noqa: E402
from benchmark import get_suite  # noqa: E402


def naive_predict(model: TemplateGrids, demos, queries) -> int:
    """Every program checked on every demonstration; returns how many were consistent."""
    demos = [(np.asarray(x), np.asarray(y)) for x, y in demos]
    return sum(solve(p, demos, cache=None, early_exit=False)[0] for p in model.programs_)


def main() -> None:
    library()  # built once per process, outside both timings
    suite = get_suite("arc", version="ARC-AGI-1")
    t0 = time.perf_counter()
    model = TemplateGrids().fit(suite.pool())
    fit_s = time.perf_counter() - t0
    ev = suite.episodes("novel", shots=1, n=10_000, seed=0)
    t0 = time.perf_counter()
    preds = model.predict(ev.batch)
    fast_s = time.perf_counter() - t0
    score = suite.score(ev, preds)
    n_naive = min(len(ev), 100)  # the baseline on a prefix, extrapolated per task
    t0 = time.perf_counter()
    for sx, sy, qx in zip(ev.batch.support_x[:n_naive], ev.batch.support_y[:n_naive], ev.batch.query_x[:n_naive]):
        naive_predict(model, list(zip(sx, sy)), qx)
    naive_s = time.perf_counter() - t0
    per_fast = fast_s / len(ev)
    per_naive = naive_s / n_naive
    print(f"library: {len(model.programs_)} programs; fit on {len(suite.pool())} training tasks: {fit_s:.1f} s")
    print(f"template-grids, ARC-AGI-1 evaluation ({len(ev)} tasks): {fast_s:.1f} s "
          f"({1000 * per_fast:.1f} ms/task), score {score.mean():.4f}, {int((score > 0).sum())} tasks solved")
    print(f"naive search (no early exit, no pruning, no cache) on the first {n_naive} tasks: "
          f"{naive_s:.1f} s ({1000 * per_naive:.1f} ms/task)")
    print(f"speed-up per task: {per_naive / per_fast:.1f}x")


if __name__ == "__main__":
    main()
