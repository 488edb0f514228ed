"""The report's figures, in one style; each is saved as PNG and SVG beside the CSV it was drawn from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from benchmark import tables as T  # noqa: E402

PALETTE = sns.color_palette("colorblind", 10)
LINESTYLES = ["-", "--", ":", "-."]
FAMILY_MARKERS = {"lookup": "s", "template": "D", "in-context": "o", "fine-tune": "^", "reference": "P"}
DPI = 100


@dataclass
class Figure:
    """A written figure: its files, the CSV of the plotted data, and a caption for the report."""

    key: str
    title: str
    caption: str
    png: Path
    svg: Path
    csv: Path
    extra: dict = field(default_factory=dict)


def slug(*parts: str) -> str:
    """A file-name-safe stem from parts (``pool_size=16`` -> ``pool_size-16``)."""
    text = "__".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "all"


class Styler:
    """One colour and line style per predictor, the same in every figure of a report."""

    def __init__(self, predictors: Sequence[str]):
        self.names = list(dict.fromkeys(predictors))

    # The protagonists and the two trivial references get fixed, unmistakable colours.
    FIXED = {"icl-transformer": "#000000", "ridge": "#CC3311", "zero": "#999999",
             "lookup": "#56B4E9"}

    def color(self, name: str):
        if name in self.FIXED:
            return self.FIXED[name]
        others = [n for n in self.names if n not in self.FIXED]
        i = others.index(name) if name in others else len(others)
        fixed = {to_hex(c) for c in self.FIXED.values()}
        palette = [c for c in PALETTE  # minus near-duplicates of the fixed ones, grey and pale yellow
                   if to_hex(c) not in fixed | {"#949494", "#d55e00", "#ece133"}]
        return palette[i % len(palette)]

    def linestyle(self, name: str) -> str:
        if name in self.FIXED:
            return ":" if name in ("zero", "lookup") else "-"
        others = [n for n in self.names if n not in self.FIXED]
        i = others.index(name) if name in others else 0
        n_colors = sum(1 for c in PALETTE if to_hex(c) not in {"#56b4e9", "#949494", "#d55e00", "#ece133"})
        return LINESTYLES[(i // n_colors) % len(LINESTYLES)]


class Renderer:
    """Draws figures in background processes while the report goes on computing its tables.

    ``submit(fn, *args)`` returns something with ``.result()``: a figure a worker draws when at
    least two cores are free for this process (one stays with the caller), else one drawn at
    once. A worker is handed the oldest waiting figure only when it is free, so that
    ``finish()`` can draw here, newest first, every figure no worker has begun (call it when the
    caller has nothing else to do). A worker that fails to start or dies, or a function that
    cannot be sent to one (a local function), is replaced by drawing in this process.
    """

    def __init__(self, directions: dict[str, bool] | None = None):
        import threading
        from collections import deque

        from benchmark.executors import available_cores

        self.directions = dict(directions or {})
        self.workers = min(4, available_cores() - 1)
        self.pool = None
        self.waiting: deque[_Task] = deque()
        self.changed = threading.Condition()
        self.closed = False

    def start(self, *warm: str) -> None:
        """Start the drawing processes now, each calling the ``"module:function"`` hooks in
        ``warm`` (imports the figures will need, done while this process reads its input)."""
        if self.workers < 1 or self.pool is not None:
            return
        import multiprocessing
        import threading
        from concurrent.futures import ProcessPoolExecutor

        try:  # spawn: a forked child of a process with torch's thread pools can hang
            self.pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context("spawn"))
            warm_ups = [self.pool.submit(_warm_up, warm) for _ in range(self.workers)]
        except (OSError, RuntimeError):
            self.workers, self.pool = 0, None
            return
        for w in warm_ups:  # one feeder per worker: it sends the next figure when the last is done
            threading.Thread(target=self._feed, args=(w,), daemon=True).start()

    def submit(self, fn: Callable, *args) -> Any:
        if self.workers >= 1 and _sendable(fn, args):
            self.start()
            with self.changed:
                if self.pool is not None and not self.closed:
                    task = _Task(self, fn, args)
                    self.waiting.append(task)
                    self.changed.notify_all()
                    return task
        return draw_now(fn, *args)

    def _feed(self, busy) -> None:
        """A worker's feeder: wait for its current figure, then send it the oldest waiting one."""
        from concurrent.futures import wait

        while True:
            wait([busy])
            with self.changed:
                while not self.waiting and not self.closed:
                    self.changed.wait()
                if self.closed:
                    return
                task = self.waiting.popleft()
                task.state = "sending"
            try:  # outside the lock: the pool's own threads call back into futures
                busy = self.pool.submit(_draw, self.directions, task.fn, task.args)
            except (AttributeError, RuntimeError):  # the pool broke or closed: the caller draws it
                busy = None
            with self.changed:
                task.future, task.state = busy, "sent" if busy is not None else "waiting"
                if busy is None:
                    self.waiting.appendleft(task)
                    self.closed = True
                self.changed.notify_all()
            if busy is None:
                return

    def take_back(self, task: _Task | None = None) -> _Task | None:
        """A waiting figure (``task``, else the newest) made the caller's to draw; None when a
        worker has it (or, without ``task``, when none is waiting)."""
        with self.changed:
            if task is None:
                if not self.waiting:
                    return None
                task = self.waiting.pop()
            else:
                while task.state == "sending":
                    self.changed.wait()
                if task.state != "waiting":
                    return None
                self.waiting.remove(task)
            task.state = "here"
            return task

    def finish(self) -> None:
        """Draw here, newest first, the figures no worker has begun: this core is free now."""
        while (task := self.take_back()) is not None:
            task.future = draw_now(task.fn, *task.args)

    def close(self, wait: bool = True) -> None:
        """Stop the workers once the figures being drawn are done (``wait``: wait for that);
        figures still waiting are drawn here if asked for."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        if self.pool is not None:
            self.pool.shutdown(wait=wait, cancel_futures=True)
            self.pool = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        # no waiting for the workers to exit (a second or so): the figures asked for are drawn
        # by now, and a failed report need not wait for the others
        self.close(wait=False)


class _Task:
    """A figure for a worker: waiting, being sent, sent (``future``), or taken back to draw here."""

    def __init__(self, owner: Renderer, fn: Callable, args: tuple):
        self.owner, self.fn, self.args = owner, fn, args
        self.state, self.future = "waiting", None

    def result(self):
        from concurrent.futures.process import BrokenProcessPool

        if self.owner.take_back(self) is not None:  # asked for before a worker took it
            self.future = draw_now(self.fn, *self.args)
        try:
            return self.future.result()
        except BrokenProcessPool:
            return self.fn(*self.args)


def draw_now(fn: Callable, *args):
    """A completed future holding ``fn(*args)`` or its error (raised by ``.result()``, as a worker's is)."""
    from concurrent.futures import Future

    done: Future = Future()
    try:
        done.set_result(fn(*args))
    except Exception as exc:
        done.set_exception(exc)
    return done


def _sendable(fn: Callable, args: tuple) -> bool:
    """Whether a worker can be sent ``fn`` (and the functions among its arguments) by name."""
    import pickle

    try:
        for f in (fn, *(a for a in args if callable(a))):
            pickle.dumps(f)
    except Exception:
        return False
    return True


def _warm_up(hooks: Sequence[str]) -> None:
    """A new drawing process: pyplot imported (by this module), then the caller's hooks."""
    import importlib

    for hook in hooks:
        mod, name = hook.split(":")
        getattr(importlib.import_module(mod), name)()


def _draw(directions: dict[str, bool], fn: Callable, args: tuple):
    """``fn(*args)`` in a drawing process, with the metric directions of the report's suites
    (no registry needed to tell errors from scores)."""
    if any(T.DIRECTIONS.get(k) != v for k, v in directions.items()):
        T.DIRECTIONS.update(directions)
        T.higher_is_better.cache_clear()
    return fn(*args)


def in_style(fn: Callable, *args):
    """``fn(*args)`` with the report's figure style set first (for galleries, which draw their own)."""
    _style()
    return fn(*args)


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.05)
    plt.rcParams.update({"svg.fonttype": "none", "figure.dpi": DPI, "savefig.bbox": "tight",
                         "axes.titleweight": "bold"})


def _save(fig, out_dir: Path, stem: str, data: pd.DataFrame, key: str, title: str, caption: str,
          **extra) -> Figure:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg, csv = out_dir / f"{stem}.png", out_dir / f"{stem}.svg", out_dir / f"{stem}.csv"
    fig.savefig(png, dpi=DPI)
    fig.savefig(svg)
    plt.close(fig)
    data.to_csv(csv, index=False)
    return Figure(key, title, caption, png, svg, csv, extra)


def _use_log(values: pd.Series, higher_better: bool) -> bool:
    """Errors spanning more than 1.5 decades (e.g. OLS near shots = d) read better on a log axis."""
    v = values[np.isfinite(values) & (values > 0)]
    return (not higher_better) and len(v) > 1 and (values >= 0).all() and v.max() / v.min() > 30


def _err(mean, lo, hi) -> list:
    """Error-bar lengths; never negative (a percentile interval can sit beside a skewed mean)."""
    mean, lo, hi = (np.asarray(v, dtype=float) for v in (mean, lo, hi))
    return [np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)]


def _floor(values: pd.Series) -> float:
    """The lowest value a log axis shows (zeros and near-exact fits are drawn at it): a third of
    the smallest positive value, but no lower than 1/1000 of the median, so that an exact template
    (error 1e-20) does not stretch the axis over twenty decades."""
    v = values[np.isfinite(values) & (values > 0)]
    if not len(v):
        return 1e-6
    return float(max(v.min() / 3, np.median(v) * 1e-3))


def _shared_legend(fig, axes) -> None:
    """One legend for all panels, each predictor once, to the right of the figure."""
    handles, labels = [], []
    for ax in np.ravel(axes):
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               title="predictor")


def score_vs_shots(curves: pd.DataFrame, suite: str, setting: str, metric: str, styler: Styler,
                   out_dir: Path) -> Figure | None:
    """One panel per split, one line per predictor, 95% bootstrap band over episodes."""
    data = curves[(curves["suite"] == suite) & (curves["setting"] == setting)].copy()
    if data.empty or data["shots"].nunique() < 2:
        return None
    _style()
    splits = [s for s in T.SPLIT_ORDER if s in set(data["split"])] + \
        sorted(set(data["split"]) - set(T.SPLIT_ORDER))
    hb = T.higher_is_better(suite)
    log = _use_log(data["mean"], hb)
    floor = _floor(data["mean"])
    fig, axes = plt.subplots(1, len(splits), figsize=(3.6 * len(splits) + 1.8, 3.6), sharey=True,
                             squeeze=False)
    for ax, split in zip(axes[0], splits):
        d = data[data["split"] == split]
        for pred in styler.names:
            p = d[d["predictor"] == pred].sort_values("shots")
            if p.empty:
                continue
            c = styler.color(pred)
            mean = p["mean"].clip(lower=floor) if log else p["mean"]
            ax.plot(p["shots"], mean, color=c, ls=styler.linestyle(pred), lw=1.6, label=pred)
            lo = p["lo"].clip(lower=floor) if log else p["lo"]
            hi = p["hi"].clip(lower=floor) if log else p["hi"]
            ax.fill_between(p["shots"], lo, hi, color=c, alpha=0.15, lw=0)
        ax.set_title(split)
        ax.set_xlabel("demonstrations (shots)")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(bottom=floor / 1.5)
    axes[0][0].set_ylabel(T.metric_label(suite, metric) + ("\n[log scale]" if log else ""))
    _shared_legend(fig, axes)
    title = f"{suite}" + (f" ({setting})" if setting else "") + ": score vs demonstrations"
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    caption = (f"Mean {metric} per number of demonstrations, one panel per split; shaded bands are "
               f"95% percentile-bootstrap intervals over episodes (n per point in the CSV)."
               + (f" Log scale; means below {floor:.2g} (near-exact answers) are drawn at {floor:.2g}."
                  if log else ""))
    return _save(fig, out_dir, slug("score_vs_shots", suite, setting), data, "score_vs_shots", title,
                 caption, suite=suite, setting=setting)


def _pool_axis(ax, values: Sequence[float]) -> dict[float, float]:
    """Log2 x axis for pool sizes; "unlimited" (inf) placed one step right of the largest."""
    finite = sorted(v for v in set(values) if np.isfinite(v))
    right = (finite[-1] * 4 if finite else 1.0)
    pos = {v: v for v in finite}
    pos[float("inf")] = right
    ticks = finite + ([right] if any(not np.isfinite(v) for v in values) else [])
    labels = [f"{int(v)}" for v in finite] + (["unlimited"] if len(ticks) > len(finite) else [])
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, rotation=0)
    ax.minorticks_off()
    return pos


def transition(trans: pd.DataFrame, suite: str, metric: str, styler: Styler, out_dir: Path,
               steps_note: str) -> Figure | None:
    """Novel- and seen-task error vs pool size M (log2 axis), one line per predictor."""
    if trans.empty:
        return None
    _style()
    measures = list(dict.fromkeys(trans["measure"]))
    splits = [s for s in ("novel", "seen-task") if s in set(trans["split"])]
    fig, axes = plt.subplots(len(splits), len(measures), figsize=(4.2 * len(measures) + 1.8,
                                                                  3.4 * len(splits)),
                             squeeze=False, sharex=True)
    hb = T.higher_is_better(suite)
    for i, split in enumerate(splits):
        for j, meas in enumerate(measures):
            ax = axes[i][j]
            d = trans[(trans["split"] == split) & (trans["measure"] == meas)]
            pos = _pool_axis(ax, trans["M"].tolist())
            log = _use_log(d["mean"], hb)
            floor = _floor(d["mean"])
            for pred in styler.names:
                p = d[d["predictor"] == pred].sort_values("M")
                if p.empty:
                    continue
                c = styler.color(pred)
                if "pool_seed" in p and p.groupby("M")["pool_seed"].nunique().max() > 1:
                    _seed_spread(ax, p, pos, c, styler.linestyle(pred), pred, floor if log else None)
                    continue
                x = p["M"].map(pos)
                mean = p["mean"].clip(lower=floor) if log else p["mean"]
                lo = p["lo"].clip(lower=floor) if log else p["lo"]
                hi = p["hi"].clip(lower=floor) if log else p["hi"]
                ax.errorbar(x, mean, yerr=_err(mean, lo, hi), color=c,
                            ls=styler.linestyle(pred), marker="o", ms=4, lw=1.5, capsize=2, label=pred)
            if log:
                ax.set_yscale("log")
                ax.set_ylim(bottom=floor / 1.5)
            ax.set_title(f"{split}: {meas}")
            if i == len(splits) - 1:
                ax.set_xlabel("pool size M (pretraining tasks, log2)")
            if j == 0:
                ax.set_ylabel(T.metric_label(suite, metric))
            if log:
                ax.set_title(f"{split}: {meas} [log]")
    _shared_legend(fig, axes)
    title = f"{suite}: the lookup -> template -> learner transition"
    fig.suptitle(title, y=1.01)
    fig.tight_layout()
    caption = ("Error vs the number of pretraining tasks M; points are means, bars 95% bootstrap "
               "intervals over episodes (for the mean over shots, each episode's mean over shots is "
               "resampled). Panels marked [log] use a log scale, with near-exact means drawn at the "
               f"panel's floor. {_seeds_caption(trans)}{steps_note}")
    return _save(fig, out_dir, slug("transition", suite), trans, "transition", title, caption,
                 suite=suite)


def _seed_spread(ax, p: pd.DataFrame, pos: dict, color, ls: str, label: str,
                 floor: float | None) -> None:
    """Several pool seeds per M: each seed a small hollow point with its interval (spread a little
    sideways), and a line through the mean of the seeds."""
    seeds = sorted(p["pool_seed"].unique(), key=str)
    for k, sd in enumerate(seeds):
        q = p[p["pool_seed"] == sd]
        shift = 2 ** ((k - (len(seeds) - 1) / 2) * 0.06)  # multiplicative on the log2 axis
        mean, lo, hi = q["mean"], q["lo"], q["hi"]
        if floor is not None:
            mean, lo, hi = mean.clip(lower=floor), lo.clip(lower=floor), hi.clip(lower=floor)
        ax.errorbar(q["M"].map(pos) * shift, mean, yerr=_err(mean, lo, hi), color=color, ls="none",
                    marker="o", ms=3, mfc="white", lw=0.8, capsize=1.5, alpha=0.8)
    m = p.groupby("M", sort=True)["mean"].mean()
    if floor is not None:
        m = m.clip(lower=floor)
    ax.plot([pos[v] for v in m.index], m.to_numpy(), color=color, ls=ls, lw=1.5, marker="o", ms=4,
            label=f"{label} (mean of {len(seeds)} seeds)")


def _seeds_caption(data: pd.DataFrame) -> str:
    if "pool_seed" not in data or data["pool_seed"].nunique() < 2:
        return ""
    seeds = ", ".join(str(s) for s in sorted(data["pool_seed"].unique(), key=str))
    try:
        from benchmark.transition import budget_note

        budget = budget_note()
    except Exception:  # the note is optional; the figure is not
        budget = ""
    return (f"Where several pool seeds were run (pool_seed {seeds}; for the equal-budget checkpoints "
            "the training seed equals the pool seed), each seed is a hollow point with its "
            f"interval and the line joins the means of the seeds. {budget}")


def distance(dist: pd.DataFrame, suite: str, out_dir: Path, steps_note: str) -> Figure | None:
    """Raventós et al.'s comparison: how close the transformer's predictions are to template-mix,
    dMMSE and ridge; one row of panels per transformer (e.g. the equal-budget checkpoints), each
    pool seed's point shown where there are several."""
    if dist.empty:
        return None
    _style()
    splits = [s for s in ("novel", "seen-task") if s in set(dist["split"])]
    subjects = list(dict.fromkeys(dist["subject"]))
    fig, axes = plt.subplots(len(subjects), len(splits), figsize=(4.6 * len(splits) + 1.8,
                                                                   3.6 * len(subjects)),
                             squeeze=False, sharey=True)
    colors = {t: PALETTE[k % len(PALETTE)] for k, t in enumerate(dict.fromkeys(dist["to"]))}
    for i, subject in enumerate(subjects):
        for ax, split in zip(axes[i], splits):
            d = dist[(dist["split"] == split) & (dist["subject"] == subject)]
            pos = _pool_axis(ax, dist["M"].tolist())
            for to, p in d.groupby("to", sort=False):
                p = p.sort_values("M")
                if "pool_seed" in p and p.groupby("M")["pool_seed"].nunique().max() > 1:
                    _seed_spread(ax, p, pos, colors[to], "-", f"to {to}", None)
                    continue
                ax.errorbar(p["M"].map(pos), p["mean"], yerr=_err(p["mean"], p["lo"], p["hi"]),
                            color=colors[to], marker="o", ms=4, capsize=2, label=f"to {to}")
            ax.set_title(f"{subject}: {split}" if len(subjects) > 1 else split)
            ax.set_xlabel("pool size M (pretraining tasks, log2)")
            if (d["mean"] > 0).all() and len(d):
                ax.set_yscale("log")
        axes[i][0].set_ylabel(f"distance of {subject}\n(mean squared difference / d, lower = closer)")
    handles, labels = [], []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab.split(" (")[0] not in [x.split(" (")[0] for x in labels]:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    who = " and ".join(subjects)
    title = f"{suite}: whose predictions does {who} match?"
    fig.suptitle(title, y=1.01 if len(subjects) > 1 else 1.03)
    fig.tight_layout()
    caption = (f"Raventós et al.'s distance: the mean squared difference between the transformer's "
               "predictions and each reference's on the same episodes and queries, at shots "
               "0..max_shots-1 (the prediction at each position of the prompt), divided by d, "
               "averaged per episode first; bars are 95% bootstrap intervals over episodes (over "
               "tasks where episodes share tasks). Paired differences between the distances are "
               "printed by `python -m benchmark.transition distances`. "
               f"{_seeds_caption(dist)}{steps_note}")
    return _save(fig, out_dir, slug("distance", suite), dist, "distance", title, caption, suite=suite)


def triad_map(points: pd.DataFrame, suite: str, styler: Styler, out_dir: Path) -> Figure | None:
    """Memorization gap vs gain with demonstrations, one point per predictor, one panel per setting."""
    data = points[points["suite"] == suite]
    if data.empty:
        return None
    _style()
    settings = T.setting_order(data["setting"])
    n = len(settings)
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols + 2.2, 4.8 * rows), squeeze=False)
    hb = T.higher_is_better(suite)
    unit = "score" if hb else "error"
    for k, setting in enumerate(settings):
        ax = axes[k // cols][k % cols]
        d = data[data["setting"] == setting].sort_values(["gain", "gap"])
        offsets = [(5, 5), (5, -11), (-5, 5), (-5, -11)]
        for i, (_, r) in enumerate(d.iterrows()):
            c = styler.color(r["predictor"])
            m = FAMILY_MARKERS.get(r["family"], "X")
            gain = 0.0 if pd.isna(r["gain"]) else r["gain"]
            xerr = _err([r["gap"]], [r["gap_lo"]], [r["gap_hi"]])
            yerr = None if pd.isna(r["gain"]) else _err([r["gain"]], [r["gain_lo"]], [r["gain_hi"]])
            ax.errorbar([r["gap"]], [gain], xerr=xerr, yerr=yerr, color=c, lw=1, capsize=2,
                        fmt="none", alpha=0.8)
            ax.scatter([r["gap"]], [gain], marker=m, s=60, edgecolors=[c], linewidths=1.6,
                       facecolors=[c] if r["updates_weights"] else ["white"], zorder=3)
            dx, dy = offsets[i % len(offsets)]  # alternate sides so that close points stay legible
            ax.annotate(r["predictor"], (r["gap"], gain), xytext=(dx, dy), textcoords="offset points",
                        fontsize=8, color="0.15", ha="left" if dx > 0 else "right")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_title(setting or suite)
        gap_def = "memorized - novel score" if hb else "novel - memorized error"
        gain_def = "score at most - fewest shots" if hb else "error at fewest - most shots"
        ax.set_xlabel(f"memorization gap ({gap_def};\n> 0: better on memorized episodes)")
        if k % cols == 0:
            ax.set_ylabel(f"gain with demonstrations on novel tasks\n({gain_def}; > 0: improves)")
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    from matplotlib.lines import Line2D

    fams = [f for f in T.FAMILY_ORDER if f in set(data["family"])]
    handles = [Line2D([], [], marker=FAMILY_MARKERS.get(f, "X"), ls="", color="0.3", mfc="white",
                      label=f) for f in fams]
    handles.append(Line2D([], [], marker="o", ls="", color="0.3", mfc="0.3",
                          label="filled: updates weights at runtime"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               title="family")
    title = f"{suite}: the triad map"
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    caption = ("One point per predictor. x: how much better it does on memorized than on novel "
               "episodes (mean over shots >= 1); y: how much its novel-task "
               f"{unit} improves from the fewest to the most demonstrations (paired by episode). Both "
               "axes are signed so that positive means better. Bars: 95% bootstrap intervals; hollow "
               "markers: weights frozen at runtime. Improving with demonstrations is not by itself "
               "learning beyond templates (template selectors improve too): see the answer section.")
    return _save(fig, out_dir, slug("triad_map", suite), data, "triad_map", title, caption, suite=suite)
