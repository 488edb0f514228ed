"""Draw ARC tasks with each predictor's attempts, for the report (a hook: ``draw_gallery``).

Each figure shows one task: its demonstrations (input above output), the first test input, the
expected output and every predictor's attempts for that test input (read from the ``prediction``
JSON column of ``results.csv``), in the standard ARC palette. Tasks are picked so that the
gallery shows disagreement: tasks some predictor solved and another did not come first.
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
                _grid_axes(ax, atts[a] if a < len(atts) else None,
                           f"{name} #{a + 1}" + (f" (score {score:.2f})" if a == 0 and score == score else ""))
        version = json.loads(cfg).get("version", "")
        fig.suptitle(f"ARC {version} task {tid}", fontsize=9)
        fig.tight_layout()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{version}_{tid}")
        path = out / f"arc_{safe}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
