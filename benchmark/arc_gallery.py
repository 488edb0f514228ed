"""Draw ARC tasks with each predictor's attempts, for the report (a hook: ``draw_gallery``).

Each figure shows one task: its demonstrations (input above output), the first test input, the
expected output and every predictor's attempts for that test input (read from the ``prediction``
JSON column of ``results.csv``), in the standard ARC palette, each template-grids attempt titled
with the program that produced it when the results carry the search's ``info``. Tasks are
picked so that the gallery shows disagreement: tasks some predictor solved and another did not
come first. ``template_programs`` and ``reach_table`` give the report the programs found per
solved task and how many tasks are reachable at depth 1, 2 and 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: the standard ARC colours 0-9 (black, blue, red, green, yellow, grey, magenta, orange, sky, maroon)
ARC_PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
               "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")


def _grid_axes(ax: Any, grid: Any, title: str) -> None:
    from matplotlib.colors import BoundaryNorm, ListedColormap

    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    if grid is None:
        ax.text(0.5, 0.5, "no attempt", ha="center", va="center", fontsize=7, transform=ax.transAxes)
        ax.set_facecolor("#eeeeee")
        return
    try:
        g = np.asarray(grid, dtype=int)
        if g.ndim != 2:
            raise ValueError
    except (ValueError, TypeError):
        ax.text(0.5, 0.5, "malformed", ha="center", va="center", fontsize=7, transform=ax.transAxes)
        return
    cmap = ListedColormap(ARC_PALETTE)
    ax.imshow(np.clip(g, 0, 9), cmap=cmap, norm=BoundaryNorm(np.arange(-0.5, 10.5), 10),
              interpolation="nearest")
    h, w = g.shape
    ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
    ax.grid(which="minor", color="#555555", linewidth=0.3)
    ax.tick_params(which="minor", length=0)


def _attempts(prediction: str) -> list:
    """Attempts for the first test input from the JSON ``prediction`` cell (empty when none)."""
    if not isinstance(prediction, str) or not prediction:
        return []
    try:
        per_query = json.loads(prediction)
        return list(per_query[0]) if per_query else []
    except (ValueError, TypeError, IndexError):
        return []


TEMPLATE = "template-grids"


def _search_info(cell: Any) -> dict | None:
    """The template search's ``info`` (programs, depths, budgets) from a results cell, if recorded."""
    if isinstance(cell, dict):
        return cell
    if not isinstance(cell, str) or not cell:
        return None
    try:
        out = json.loads(cell)
    except ValueError:
        return None
    return out if isinstance(out, dict) else None


def template_programs(results_df: Any, predictor: str = TEMPLATE, splits: Sequence[str] = ("novel",),
                      recompute: bool = True) -> Any:
    """The programs ``template-grids`` answered with, one row per task it scored on (score > 0).

    Columns: ``version, split, scoring, task_id, score, program`` (the best program, readable),
    ``second`` (the second attempt's program or ""), ``depth`` (primitives in the best program),
    ``in_pool`` (how many pool tasks the same
    primitive sequence solved offline; 0 = a composition no training task needed). Read from the
    results' ``info`` column where the run recorded one; otherwise (``recompute``) the predictor
    is fitted on the suite's pool once per configuration and re-run on those tasks only.
    """
    import pandas as pd

    from benchmark.registry import get_predictor, get_suite

    cols = ["version", "split", "scoring", "task_id", "score", "program", "second", "depth", "in_pool"]
    df = results_df
    rows = df[(df["suite"] == "arc") & (df["predictor"] == predictor) & (df["split"].isin(list(splits)))
              & (df["status"] == "ok") & (df["score"] > 0)]
    out = []
    fitted: dict = {}
    suites: dict = {}
    for r in rows.itertuples():
        cfg = json.loads(r.suite_config)
        info = _search_info(getattr(r, "info", None))
        if info is None and recompute:
            key = (r.suite_config, r.predictor_params)
            if r.suite_config not in suites:
                suites[r.suite_config] = get_suite("arc", **cfg)
            suite = suites[r.suite_config]
            if key not in fitted:
                params = json.loads(r.predictor_params) if isinstance(r.predictor_params, str) else {}
                fitted[key] = get_predictor(predictor, **params).fit(suite.pool())
            task = suite.novel_tasks().get(r.task_id) or suite.training().get(r.task_id)
            if task is not None:
                info = fitted[key].predict_task(list(task.train), [x for x, _ in task.test]).info
        if not info or not info.get("programs"):
            continue
        progs, depths, pool_n = info["programs"], info["depths"], info.get("in_pool") or [0]
        out.append({"version": cfg.get("version", ""), "split": r.split, "scoring": cfg.get("scoring", ""),
                    "task_id": r.task_id, "score": float(r.score), "program": progs[0],
                    "second": progs[1] if len(progs) > 1 else "", "depth": int(depths[0]),
                    "in_pool": int(pool_n[0]) if pool_n else 0})
    return pd.DataFrame(out, columns=cols)


def reach_table(programs: Any) -> Any:
    """How many tasks template-grids reaches at depth <= 1, 2, 3 (from :func:`template_programs`).

    One row per (version, split, scoring, depth): ``solved`` at exactly that depth, ``reachable``
    at most that depth (cumulative), and of those, ``program_in_pool`` (the same primitive
    sequence solved a training task offline: selection rather than a new composition).
    """
    import pandas as pd

    rows = []
    if len(programs):
        for (v, sp, sc), g in programs.groupby(["version", "split", "scoring"], sort=True):
            for d in range(0, int(max(3, g["depth"].max())) + 1):
                upto = g[g["depth"] <= d]
                rows.append({"version": v, "split": sp, "scoring": sc, "depth": d,
                             "solved": int((g["depth"] == d).sum()), "reachable": len(upto),
                             "program_in_pool": int((upto["in_pool"] > 0).sum())})
    return pd.DataFrame(rows, columns=["version", "split", "scoring", "depth", "solved", "reachable",
                                       "program_in_pool"])


def pick_tasks(arc: Any, n: int) -> list[tuple[str, str]]:
    """(suite_config, task_id) of up to ``n`` tasks, those where predictors disagree first."""
    ok = arc[arc["status"] == "ok"]
    stats = ok.groupby(["suite_config", "task_id"])["score"].agg(["max", "min", "count"])
    stats["disagree"] = (stats["max"] > 0) & (stats["min"] < stats["max"])
    stats = stats.sort_values(["disagree", "max", "count"], ascending=False)
    return list(stats.index[:n])


def draw_gallery(results_df: Any, out_dir: str | Path, n: int = 6, splits: Sequence[str] = ("novel",)) -> list[Path]:
    """Draw up to ``n`` ARC tasks from a results table into ``out_dir``; return the PNG paths.

    Rows of other suites are ignored; with no ARC rows nothing is drawn (an empty list).

    Example
    -------
    >>> import pandas as pd
    >>> draw_gallery(pd.read_csv("reports/default/results.csv"), "reports/default/figures")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmark.registry import get_suite

    df = results_df
    arc = df[(df["suite"] == "arc") & (df["split"].isin(list(splits)))]
    if arc.empty:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    suites: dict[str, Any] = {}
    for cfg, tid in pick_tasks(arc, n):
        if cfg not in suites:
            suites[cfg] = get_suite("arc", **json.loads(cfg))
        suite = suites[cfg]
        task = suite.novel_tasks().get(tid) or suite.training().get(tid)
        if task is None:
            continue
        rows = arc[(arc["suite_config"] == cfg) & (arc["task_id"] == tid)].drop_duplicates("predictor")
        preds = [(r.predictor, _attempts(r.prediction), r.score) for r in rows.itertuples()]
        progs = {r.predictor: (_search_info(getattr(r, "info", None)) or {}).get("programs", [])
                 for r in rows.itertuples()}
        n_att = max([2] + [len(a) for _, a, _ in preds])
        ncols = max(len(task.train) + 2, n_att)
        nrows = 2 + len(preds)
        fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 1.5 * nrows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for j, (x, y) in enumerate(task.train):
            for r, g, lab in ((0, x, f"demo {j + 1} in"), (1, y, f"demo {j + 1} out")):
                axes[r, j].axis("on")
                _grid_axes(axes[r, j], g, lab)
        k = len(task.train)
        for r, g, lab in ((0, task.test[0][0], "test input"), (1, task.test[0][1], "expected")):
            axes[r, k].axis("on")
            _grid_axes(axes[r, k], g, lab)
        for i, (name, atts, score) in enumerate(preds):
            for a in range(max(1, len(atts))):
                ax = axes[2 + i, a]
                ax.axis("on")
                prog = progs.get(name, [])
                label = f"{name} #{a + 1}" + (f" (score {score:.2f})" if a == 0 and score == score else "")
                if a < len(prog):  # the program that produced this attempt, readable
                    label += "\n" + "\n".join(prog[a][i:i + 24] for i in range(0, min(len(prog[a]), 72), 24))
                _grid_axes(ax, atts[a] if a < len(atts) else None, label)
        version = json.loads(cfg).get("version", "")
        fig.suptitle(f"ARC {version} task {tid}", fontsize=9)
        fig.tight_layout()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{version}_{tid}")
        path = out / f"arc_{safe}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
