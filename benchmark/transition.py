"""The lookup -> template -> learner transition, measured directly on the shipped checkpoints.

``python -m benchmark.transition distances`` prints, per pool size and seed of the equal-budget
checkpoints, the transformer's paired distance to template-mix, dMMSE and ridge (Raventós et
al.'s definition, shots 0..15) with per-episode intervals; ``python -m benchmark.transition cards``
adds (if missing) and prints each checkpoint's training loss beside its optima.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from benchmark.registry import get_predictor, get_suite

COMPARED = ("icl-transformer", "template-dmmse", "template-best", "lookup", "ridge")


def transition_table(pool_sizes: Iterable, episodes: int = 5000, seed: int = 1,
                     splits: Iterable[str] = ("novel", "seen-task"), suite_params: dict | None = None) -> pd.DataFrame:
    """Per pool size, split and predictor: mean error over shots 1..max, at 8 and at 16, and
    the mean squared distance of the transformer's predictions to dMMSE's and ridge's.

    Predictors that do not apply (templates on an unlimited pool, a missing checkpoint) are left out.
    """
    rows = []
    for m in pool_sizes:
        suite = get_suite("linear-regression", pool_size=m, **(suite_params or {}))
        pool = suite.pool()
        fitted = {}
        for name in COMPARED:
            try:
                fitted[name] = get_predictor(name).fit(pool)
            except Exception as exc:  # NotApplicable or missing checkpoint
                if name == "icl-transformer":
                    print(f"pool {m}: icl-transformer unavailable ({exc})")
        card = getattr(fitted.get("icl-transformer"), "card_", {})
        steps = card.get("total_steps", card.get("steps"))
        for split in splits:
            err = {n: [] for n in fitted}
            dist = {"template-dmmse": [], "ridge": []}
            for k in range(1, suite.max_shots + 1):
                ev = suite.episodes(split, k, episodes, seed)
                preds = {n: p.predict(ev.batch) for n, p in fitted.items()}
                for n, pr in preds.items():
                    err[n].append(suite.score(ev, pr).mean())
                if "icl-transformer" in preds:
                    for ref in dist:
                        if ref in preds:
                            dist[ref].append(((preds["icl-transformer"] - preds[ref]) ** 2).mean() / suite.d)
            for n, e in err.items():
                row = {"pool_size": str(m), "split": split, "predictor": n, "train_steps": steps,
                       "mean_error_1_to_max": float(np.mean(e)), "error_at_8": float(e[7]),
                       "error_at_16": float(e[15]) if len(e) >= 16 else np.nan}
                if n == "icl-transformer":
                    for ref, v in dist.items():
                        row[f"distance_to_{ref}"] = float(np.mean(v)) if v else np.nan
                rows.append(row)
    return pd.DataFrame(rows)


# -- equal-budget, multi-seed controls (issue 14) ---------------------------------------------
REFERENCES = ("template-mix", "template-dmmse", "ridge")
Z95 = 1.959963984540054


def _ci(v: np.ndarray) -> tuple[float, float]:
    """Mean and 95% half-width (normal approximation; n is in the thousands) of per-episode values."""
    v = np.asarray(v, dtype=float)
    return float(v.mean()), float(Z95 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def episode_distances(pool_size: int, seed: int, episodes: int = 2000, run_seed: int = 1,
                      split: str = "novel", shots: Sequence[int] = range(16),
                      refs: Sequence[str] = REFERENCES, checkpoint_set: str = "transition",
                      suite_params: dict | None = None) -> pd.DataFrame:
    """Per episode: the transformer's distance to each reference and everyone's error.

    Distance (Raventós et al. 2023): the squared difference of the two predictors' outputs,
    divided by d, averaged over the queries and over ``shots`` (0..15: the prediction at each
    position of a 16-point prompt). The same episodes (prefix-stable across shot counts) serve
    every predictor, so differences between distances are paired by episode.
    """
    suite = get_suite("linear-regression", pool_size=pool_size, pool_seed=seed, **(suite_params or {}))
    pool = suite.pool()
    icl = get_predictor("icl-transformer", checkpoint_set=checkpoint_set).fit(pool)
    fitted = {r: get_predictor(r).fit(pool) for r in refs}
    dist = {r: np.zeros(episodes) for r in refs}
    err = {n: np.zeros(episodes) for n in ("icl-transformer", *refs)}
    for k in shots:
        ev = suite.episodes(split, k, episodes, run_seed)
        p_icl = icl.predict(ev.batch)
        err["icl-transformer"] += suite.score(ev, p_icl)
        for r, f in fitted.items():
            p = f.predict(ev.batch)
            dist[r] += ((p_icl - p) ** 2).mean(axis=1) / suite.d
            err[r] += suite.score(ev, p)
    n = len(list(shots))
    out = pd.DataFrame({"episode": np.arange(episodes)})
    for r in refs:
        out[f"distance_to_{r}"] = dist[r] / n
    for name, e in err.items():
        out[f"error_{name}"] = e / n
    out.insert(0, "seed", seed)
    out.insert(0, "pool_size", pool_size)
    out.attrs["train_steps"] = icl.card_.get("total_steps", icl.card_.get("steps"))
    return out


def distance_summary(per_episode: pd.DataFrame, refs: Sequence[str] = REFERENCES) -> pd.DataFrame:
    """Per pool size and seed: mean distance to each reference with a 95% interval, and the paired
    (same-episode) differences to ridge's distance with theirs."""
    rows = []
    for (m, s), g in per_episode.groupby(["pool_size", "seed"], sort=True):
        row = {"pool_size": m, "seed": s, "episodes": len(g)}
        for r in refs:
            row[f"to_{r}"], row[f"to_{r}_ci"] = _ci(g[f"distance_to_{r}"])
        for r in refs:
            if r != "ridge" and "ridge" in refs:
                row[f"{r}_minus_ridge"], row[f"{r}_minus_ridge_ci"] = _ci(
                    g[f"distance_to_{r}"] - g["distance_to_ridge"])
        for c in [c for c in g if c.startswith("error_")]:
            row[c] = float(g[c].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(mean: float, half: float) -> str:
    return f"{mean:.3f} ± {half:.3f}"


def print_distances(summary: pd.DataFrame, refs: Sequence[str] = REFERENCES, file=sys.stdout,
                    split: str = "novel") -> None:
    """Per pool size: each seed's distances and paired differences, then the across-seed range."""
    print("distance of icl-transformer to each reference (mean squared difference / d over shots "
          "0..15 and queries; ± = 95% interval over episodes; 'x - ridge' is paired by episode)", file=file)
    head = ["pool", "seed"] + [f"to {r}" for r in refs] + [f"{r} - ridge" for r in refs if r != "ridge"]
    print(" | ".join(head), file=file)
    for m, g in summary.groupby("pool_size", sort=True):
        for _, r in g.iterrows():
            cells = [str(m), str(int(r["seed"]))] + [_fmt(r[f"to_{x}"], r[f"to_{x}_ci"]) for x in refs]
            cells += [_fmt(r[f"{x}_minus_ridge"], r[f"{x}_minus_ridge_ci"]) for x in refs if x != "ridge"]
            print(" | ".join(cells), file=file)
        cells = [str(m), "all"] + [f"{g[f'to_{x}'].mean():.3f} [{g[f'to_{x}'].min():.3f}, "
                                   f"{g[f'to_{x}'].max():.3f}]" for x in refs]
        cells += [f"{g[f'{x}_minus_ridge'].mean():+.3f} [{g[f'{x}_minus_ridge'].min():+.3f}, "
                  f"{g[f'{x}_minus_ridge'].max():+.3f}]" for x in refs if x != "ridge"]
        print(" | ".join(cells) + "   (mean of seeds [min, max])", file=file)
    errs = [c for c in summary if c.startswith("error_")]
    if errs:
        print(f"\n{split}-task error (mse/d, mean over the same shots and episodes)", file=file)
        print(" | ".join(["pool", "seed"] + [c[len("error_"):] for c in errs]), file=file)
        for _, r in summary.iterrows():
            print(" | ".join([str(int(r["pool_size"])), str(int(r["seed"]))] + [f"{r[c]:.3f}" for c in errs]),
                  file=file)


def transition_checkpoints(root: Path | None = None) -> list[Path]:
    """The equal-budget checkpoint folders (``pool-{M}-seed-{s}``) that have a card."""
    from benchmark.paths import data_dir

    root = root or data_dir() / "checkpoints" / "linear-regression" / "transition"
    return sorted((p for p in root.glob("pool-*-seed-*") if (p / "card.json").exists()),
                  key=lambda p: tuple(int(x) for x in p.name.split("-")[1::2]))


def default_checkpoints() -> list[Path]:
    """The one-per-pool-size shipped checkpoints (``pool-{M}``), smallest pool first."""
    from benchmark.paths import data_dir

    from benchmark.tables import pool_value

    root = data_dir() / "checkpoints" / "linear-regression"
    return sorted((p for p in root.glob("pool-*") if (p / "card.json").exists()),
                  key=lambda p: pool_value(p.name.split("-", 1)[1]))


SKEPTICS = ("template-mix", "template-mix-span", "algorithm-select", "template-dmmse", "ridge")


def skeptic_errors(pool_size, split: str = "novel", episodes: int = 1000, run_seed: int = 1,
                   pool_seed: int = 0, checkpoint_set: str = "default", shots: Sequence[int] = range(1, 17),
                   predictors: Sequence[str] = SKEPTICS, suite_params: dict | None = None) -> dict:
    """Mean error over ``shots`` of the transformer and the template skeptics on the same episodes,
    with 95% intervals, and the transformer's paired difference to each (negative: it is better)."""
    suite = get_suite("linear-regression", pool_size=pool_size, pool_seed=pool_seed, **(suite_params or {}))
    pool = suite.pool()
    fitted = {}
    try:
        fitted["icl-transformer"] = get_predictor("icl-transformer", checkpoint_set=checkpoint_set).fit(pool)
    except Exception as exc:
        print(f"pool {pool_size}: icl-transformer unavailable ({exc})", file=sys.stderr)
    for name in predictors:
        try:
            fitted[name] = get_predictor(name).fit(pool)
        except Exception:  # templates on an unlimited pool
            continue
    err = {n: np.zeros(episodes) for n in fitted}
    for k in shots:
        ev = suite.episodes(split, k, episodes, run_seed)
        for n, f in fitted.items():
            err[n] += suite.score(ev, f.predict(ev.batch))
    err = {n: e / len(list(shots)) for n, e in err.items()}
    out = {"pool_size": pool_size, "split": split}
    for n, e in err.items():
        out[n] = _ci(e)
        if n != "icl-transformer" and "icl-transformer" in err:
            out[f"icl - {n}"] = _ci(err["icl-transformer"] - e)
    return out


def print_skeptics(rows: Sequence[dict], file=sys.stdout) -> None:
    """One line per pool size: each predictor's error, then the transformer's paired differences."""
    for r in rows:
        cells = [f"{k} {_fmt(*v)}" for k, v in r.items() if isinstance(v, tuple)]
        print(f"M={r['pool_size']} [{r['split']}]: " + "; ".join(cells), file=file)


def budget_note() -> str:
    """One sentence on the equal-budget checkpoints (steps, pool sizes, seeds), for captions."""
    cards = [json.loads((p / "card.json").read_text()) for p in transition_checkpoints()]
    if not cards:
        return ""
    steps = sorted({c.get("total_steps", c.get("steps")) for c in cards})
    pools = sorted({int(c["suite_params"]["pool_size"]) for c in cards})
    seeds = sorted({int(c["suite_params"]["pool_seed"]) for c in cards})
    return (f"Equal-budget checkpoints (icl-transformer with checkpoint_set=\"transition\"): "
            f"{' / '.join(f'{s:,}' for s in steps)} steps each, M = {', '.join(map(str, pools))}, "
            f"seeds {', '.join(map(str, seeds))}; each card records its final training loss beside "
            f"the dMMSE and ridge optima of its training distribution. ")


def card_losses(paths: Iterable[Path], add: bool = True, force: bool = False) -> pd.DataFrame:
    """Each checkpoint's final training loss beside its dMMSE and ridge optima (computed and
    written into the card when missing, or always with ``force``)."""
    from baselines.icl_train import add_training_optima

    rows = []
    for p in paths:
        card = json.loads((p / "card.json").read_text())
        losses = card.get("training_losses")
        if add and (losses is None or force):
            losses = add_training_optima(p)
        losses = losses or {}
        rows.append({"checkpoint": p.name, "pool_size": card["suite_params"]["pool_size"],
                     "pool_seed": card["suite_params"]["pool_seed"], "seed": card.get("seed"),
                     "steps": card.get("total_steps", card.get("steps")),
                     "final_running_loss": losses.get("final_running_loss"),
                     "model_loss": losses.get("model"), "dmmse_optimum": losses.get("dmmse"),
                     "ridge_optimum": losses.get("ridge")})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.transition", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("distances", help="paired distances of the equal-budget checkpoints")
    d.add_argument("--pools", default="16,64,256")
    d.add_argument("--seeds", default="0,1,2")
    d.add_argument("--episodes", type=int, default=2000)
    d.add_argument("--run-seed", type=int, default=1)
    d.add_argument("--split", default="novel")
    d.add_argument("--csv", help="also write the per-episode table here")
    d.add_argument("--from-csv", nargs="+", metavar="CSV",
                   help="summarize per-episode tables written by --csv instead of computing")
    e = sub.add_parser("errors", help="error of the transformer and the template skeptics, paired")
    e.add_argument("--pools", default="4,16,64,256,1024,unlimited")
    e.add_argument("--split", default="novel")
    e.add_argument("--episodes", type=int, default=1000)
    e.add_argument("--run-seed", type=int, default=1)
    e.add_argument("--task-prior", default="gaussian")
    e.add_argument("--checkpoint-set", default="default", choices=("default", "transition"))
    e.add_argument("--pool-seed", type=int, default=0)
    e.add_argument("--predictors", default=",".join(SKEPTICS), help="comma-separated template skeptics")
    c = sub.add_parser("cards", help="training loss vs the dMMSE and ridge optima, per checkpoint")
    c.add_argument("--force", action="store_true", help="recompute the optima even when present")
    c.add_argument("--no-add", action="store_true", help="only print what the cards hold")
    c.add_argument("--set", choices=("transition", "default", "all"), default="transition",
                   help="which checkpoints: the equal-budget ones (default), the one-per-pool ones, or both")
    args = ap.parse_args(argv)
    if args.cmd == "errors":
        print(f"mean error (mse/d) over shots 1..16, {args.episodes} episodes, split {args.split}, "
              f"task_prior {args.task_prior}, run seed {args.run_seed}; ± = 95% interval; "
              "'icl - x' is paired by episode (negative: the transformer is better)")
        rows = [skeptic_errors(m, args.split, args.episodes, args.run_seed, args.pool_seed,
                               args.checkpoint_set, predictors=args.predictors.split(","),
                               suite_params={"task_prior": args.task_prior})
                for m in args.pools.split(",")]
        print_skeptics(rows)
        return 0
    if args.cmd == "cards":
        paths = ((transition_checkpoints() if args.set in ("transition", "all") else [])
                 + (default_checkpoints() if args.set in ("default", "all") else []))
        df = card_losses(paths, add=not args.no_add, force=args.force)
        if df.empty:
            print("no equal-budget checkpoints with a card under data/checkpoints/linear-regression/transition")
            return 1
        print("training loss (squared error per position, positions 0..16, noise included) vs the "
              "optima on each checkpoint's own training distribution")
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return 0
    if args.from_csv:
        per_ep = pd.concat([pd.read_csv(f) for f in args.from_csv], ignore_index=True)
        print(f"from {len(args.from_csv)} saved table(s): {per_ep.groupby(['pool_size', 'seed']).ngroups} "
              f"checkpoints, {len(per_ep)} episodes")
        print_distances(distance_summary(per_ep), split=args.split)
        return 0
    try:
        pools = [int(x) for x in args.pools.split(",")]
        seeds = [int(x) for x in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--pools and --seeds take comma-separated integers, got {args.pools!r} / {args.seeds!r}")
    parts = []
    for m in pools:
        for s in seeds:
            try:
                parts.append(episode_distances(m, s, args.episodes, args.run_seed, args.split))
            except Exception as exc:  # a checkpoint still training, say
                print(f"pool {m} seed {s}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    if not parts:
        print("no checkpoint could be evaluated", file=sys.stderr)
        return 1
    per_ep = pd.concat(parts, ignore_index=True)
    if args.csv:
        per_ep.to_csv(args.csv, index=False)
    print(f"split {args.split}, {args.episodes} episodes per checkpoint, run seed {args.run_seed}, "
          f"checkpoints: equal budget ({parts[0].attrs.get('train_steps')} steps)")
    print_distances(distance_summary(per_ep), split=args.split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
