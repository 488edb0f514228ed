"""Time template-grids (the arc_dsl search) on a whole ARC evaluation split, against the v1 library.

Both predictors are fitted on the same pool and answer the same episodes in the same process;
the script prints CPU and wall seconds for fit and predict, the ratio of the two libraries'
predict times, the scores under both ARC conventions, the depth distribution of the solved
tasks, how many searches hit a budget, and the load average (the machine may be shared).
``--against REV`` also loads template-grids and ``baselines/arc_dsl`` as of git revision REV (into
a temporary directory, under another package name), fits and times it the same way in the same
process, prints the new / old CPU ratios and checks that every answer is identical.
Run: python perf/arc_template.py [--version ARC-AGI-1] [--episodes N] [--max-nodes N] [--against REV]
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
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


def template_at(rev: str) -> type:
    """``TemplateGrids`` as of git revision ``rev``: its files copied to a temporary package
    (``arc_dsl_at_rev``), unregistered, so that both versions run side by side."""
    root = Path(__file__).resolve().parent.parent
    git = lambda *a: subprocess.run(["git", "-C", str(root), *a], check=True, capture_output=True,
                                    text=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix="arc_template_"))
    (tmp / "arc_dsl_at_rev").mkdir()
    files = [f for f in git("ls-tree", "--name-only", rev, "baselines/arc_dsl/").split() if f.endswith(".py")]
    for f in files + ["baselines/grid_template.py"]:
        text = git("show", f"{rev}:{f}").replace("baselines.arc_dsl", "arc_dsl_at_rev")
        text = "\n".join(line for line in text.splitlines() if not line.startswith("@register_predictor"))
        dest = tmp / "grid_template_at_rev.py" if f.endswith("grid_template.py") else tmp / "arc_dsl_at_rev" / Path(f).name
        dest.write_text(text + "\n")
    sys.path.insert(0, str(tmp))
    return importlib.import_module("grid_template_at_rev").TemplateGrids


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="ARC-AGI-1")
    ap.add_argument("--episodes", type=int, default=10_000, help="first N evaluation tasks (default: all)")
    ap.add_argument("--max-nodes", type=int, default=None, help="template-grids max_nodes (default: its own)")
    ap.add_argument("--against", metavar="REV", default=None,
                    help="also time template-grids as of this git revision and check identical answers")
    a = ap.parse_args(argv)
    Before = template_at(a.against) if a.against else None
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
    if Before is not None:
        before, bfit_c, bfit_w = timed(lambda: Before(**params).fit(pool))
        bpreds, c_bef, w_bef = timed(lambda: before.predict(ev.batch))
        same = sum(list(p) == list(q) and p.info["programs"] == q.info["programs"] for p, q in zip(preds, bpreds))
        print(f"template-grids at {a.against}: fit {bfit_c:.1f} s CPU ({bfit_w:.1f} s wall), predict "
              f"{c_bef:.1f} s CPU ({w_bef:.1f} s wall); now / then: fit {fit_c / max(bfit_c, 1e-9):.2f}x, "
              f"predict {c_new / max(c_bef, 1e-9):.2f}x CPU (then / now {c_bef / max(c_new, 1e-9):.2f}x); "
              f"identical answers and programs on {same} of {n} tasks")
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
