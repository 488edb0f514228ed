"""The strings table of docs/llm.md from run directories: accuracy per kind, split and shots.

For every LM predictor (and lookup/template for reference) it prints the mean exact match with a
95% interval and n (episodes): the interval resamples episodes (each episode's score is the
fraction of its queries answered right; the queries of one episode are not independent), exact
Clopper-Pearson where every score is 0 or 1, and never of zero width for a constant. Then the
paired difference LoRA - in-context on identical episodes (matched by episode content hash).

    python perf/llm_table.py reports/default [more run dirs]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.stats import cluster_bootstrap_ci  # noqa: E402

KIND_ORDER = ["knowledge", "retrieval", "familiar-rules", "constructed"]
SPLIT_ORDER = ["memorized", "seen-task", "novel"]


def load(runs: list[str]) -> pd.DataFrame:
    frames = []
    for r in runs:
        p = Path(r)
        if (p / "results.csv").exists():
            frames.append(pd.read_csv(p / "results.csv", keep_default_na=False))
        else:
            frames += [pd.read_csv(f, comment="#", keep_default_na=False) for f in sorted((p / "cells").glob("*.csv"))]
    if not frames:
        raise SystemExit(f"no results.csv or cells/*.csv under {runs}")
    df = pd.concat(frames, ignore_index=True)
    df = df[(df["suite"] == "strings") & (df["status"] == "ok")].copy()
    df["score"] = df["score"].astype(float)
    df["kind"] = df["task_id"].astype(str).str.split("/").str[0]
    df["who"] = df["predictor"]
    return df


def cell(v: np.ndarray) -> str:
    m, lo, hi = cluster_bootstrap_ci(v, n_boot=4000)
    return f"{m:.2f} [{lo:.2f}, {hi:.2f}] n={len(v)}"


def table(df: pd.DataFrame, predictors: list[str], shots: list[int]) -> str:
    lines = ["| predictor | kind | split | " + " | ".join(f"{s} shots" for s in shots) + " |",
             "|---|---|---|" + "---|" * len(shots)]
    for who in predictors:
        d = df[df["who"] == who]
        for kind in KIND_ORDER:
            for split in SPLIT_ORDER:
                g = d[(d["kind"] == kind) & (d["split"] == split)]
                if g.empty:
                    continue
                cells = [cell(g[g["shots"].astype(int) == s]["score"].to_numpy()) if (g["shots"].astype(int) == s).any() else "–"
                         for s in shots]
                lines.append(f"| {who} | {kind} | {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(df: pd.DataFrame, a: str, b: str) -> str:
    lines = [f"| kind | shots | n paired | {a} | {b} | {b} - {a} [95%] |", "|---|---|---|---|---|---|"]
    for kind in KIND_ORDER:
        for s in sorted(df["shots"].astype(int).unique()):
            x = df[(df["who"] == a) & (df["kind"] == kind) & (df["split"] == "novel") & (df["shots"].astype(int) == s)]
            y = df[(df["who"] == b) & (df["kind"] == kind) & (df["split"] == "novel") & (df["shots"].astype(int) == s)]
            if x.empty or y.empty:
                continue
            m = x.merge(y, on=["episode_hash", "seed"], suffixes=("_a", "_b"))
            if m.empty:
                continue
            d = m["score_b"].to_numpy() - m["score_a"].to_numpy()
            md, lo, hi = cluster_bootstrap_ci(d, n_boot=4000, bounds=(-1.0, 1.0))
            lines.append(f"| {kind} | {s} | {len(m)} | {m['score_a'].mean():.2f} | {m['score_b'].mean():.2f} | "
                         f"{md:+.2f} [{lo:+.2f}, {hi:+.2f}] |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="*", default=["reports/default"])
    ap.add_argument("--icl", default="smollm2-icl")
    ap.add_argument("--lora", default="smollm2-lora-ttt")
    ap.add_argument("--shots", default="0,4,16", help="shot counts shown (comma-separated)")
    args = ap.parse_args(argv)
    if not any(Path(r).exists() for r in args.runs):
        print(f"no run directory among {args.runs}; run `make bench` first")
        return
    df = load(args.runs)
    present = [p for p in [args.icl, args.lora, "template-strings", "lookup"] if (df["who"] == p).any()]
    print(table(df, present, [int(x) for x in args.shots.split(",")]))
    print()
    print(paired(df, args.icl, args.lora))


if __name__ == "__main__":
    main()
