"""Time template-grids (the arc_dsl search) on a whole ARC evaluation split, against the v1 library.

Both predictors are fitted on the same pool and answer the same episodes in the same process;
the script prints CPU and wall seconds for fit and predict, the ratio of the two libraries'
predict times, the scores under both ARC conventions, the depth distribution of the solved
tasks, how many searches hit a budget, and the load average (the machine may be shared).
Run: python perf/arc_template.py [--version ARC-AGI-1] [--episodes N] [--max-nodes N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from baselines.grid_template import TemplateGrids  # noqa: E402
from baselines.grid_template_v1 import TemplateGridsV1, library  # noqa: E402
from benchmark import get_suite  # noqa: E402
from benchmark.suites.arc import score_attempts  # noqa: E402


def timed(fn):
    """(result, cpu seconds, wall seconds) of calling ``fn``."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="ARC-AGI-1")
    ap.add_argument("--episodes", type=int, default=10_000, help="first N evaluation tasks (default: all)")
    ap.add_argument("--max-nodes", type=int, default=None, help="template-grids max_nodes (default: its own)")
    a = ap.parse_args(argv)
    library()  # the v1 library is built once per process, outside the timings
    suite = get_suite("arc", version=a.version)
    pool = suite.pool()
    ev = suite.episodes("novel", shots=1, n=a.episodes, seed=0)
    n = len(ev)
    params = {} if a.max_nodes is None else {"max_nodes": a.max_nodes}
    new, fit_c, fit_w = timed(lambda: TemplateGrids(**params).fit(pool))
    old, ofit_c, ofit_w = timed(lambda: TemplateGridsV1().fit(pool))
    preds, c_new, w_new = timed(lambda: new.predict(ev.batch))
    opreds, c_old, w_old = timed(lambda: old.predict(ev.batch))
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"fit on {len(pool)} training tasks: template-grids {fit_c:.1f} s CPU ({fit_w:.1f} s wall), "
          f"v1 {ofit_c:.1f} s CPU ({ofit_w:.1f} s wall); pool tasks solved offline: "
          f"{new.chosen_params_['pool_tasks_solved']}")
    for name, p, c, w in (("template-grids", preds, c_new, w_new), ("v1 library", opreds, c_old, w_old)):
        per = score_attempts(ev.targets, p, scoring="per-test-input")
        aon = score_attempts(ev.targets, p, scoring="all-or-nothing")
        print(f"{name}, {a.version} evaluation ({n} tasks): {c:.1f} s CPU ({1000 * c / n:.0f} ms/task), "
              f"{w:.1f} s wall; per-test-input {per.sum():.2f} ({per.mean():.4f}, {int((per > 0).sum())} tasks "
              f"scored), all-or-nothing {int(aon.sum())} ({aon.mean():.4f})")
    print(f"predict time ratio template-grids / v1: {c_new / max(c_old, 1e-9):.1f}x CPU, "
          f"{w_new / max(w_old, 1e-9):.1f}x wall")
    per = score_attempts(ev.targets, preds, scoring="per-test-input")
    depths = Counter()
    for s, p in zip(per, preds):
        if s > 0:
            depths[min(p.info["depths"][:2])] += 1
    infos = [p.info for p in preds]
    print(f"depth of the best program on the {int((per > 0).sum())} scored tasks: "
          f"{dict(sorted(depths.items()))}")
    print(f"budgets: {sum(i['timed_out'] for i in infos)} searches timed out, "
          f"{sum(i['node_budget_hit'] for i in infos)} hit the node budget, "
          f"{sum(i['split_budget_hit'] for i in infos)} skipped by the split budget; "
          f"slowest task {max(i['seconds'] for i in infos):.2f} s, "
          f"median {np.median([i['seconds'] for i in infos]):.3f} s")


if __name__ == "__main__":
    main()
