"""The strings table of docs/llm.md from run directories: accuracy per kind, split and shots.

For every LM predictor (and lookup/template for reference) it prints the mean exact match with a
95% interval and n (episodes): the interval resamples episodes (each episode's score is the
fraction of its queries answered right; the queries of one episode are not independent), exact
Clopper-Pearson where every score is 0 or 1, and never of zero width for a constant. Then the
paired difference LoRA - in-context on identical episodes (matched by episode content hash; an
episode answered in two sections counts once), for each ``--lora`` label given, with a Holm
adjustment over all the paired comparisons printed and, where an interval contains 0, how many
paired episodes a test would need to detect the observed difference (80% power, 5% level).

    python perf/llm_table.py reports/default [more run dirs]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.stats import cluster_bootstrap_ci, cluster_t_test, holm, units_needed  # noqa: E402

KIND_ORDER = ["knowledge", "retrieval", "familiar-rules", "constructed"]
SPLIT_ORDER = ["memorized", "seen-task", "novel"]


def load(runs: list[str]) -> pd.DataFrame:
    frames = []
    for r in runs:
        p = Path(r)
        if (p / "results.csv").exists():
            frames.append(pd.read_csv(p / "results.csv", keep_default_na=False, low_memory=False))
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


def _digits(lo: float, hi: float) -> int:
    """Decimals for an interval: 3 when it lies within 0.1 of zero, so a rare success is not
    printed as 0.00 [0.00, 0.00]."""
    return 2 if max(abs(lo), abs(hi)) >= 0.1 else 3


def cell(v: np.ndarray) -> str:
    m, lo, hi = cluster_bootstrap_ci(v, n_boot=4000)
    d = _digits(lo, hi)
    return f"{m:.{d}f} [{lo:.{d}f}, {hi:.{d}f}] n={len(v)}"


def table(df: pd.DataFrame, predictors: list[str], shots: list[int]) -> str:
    lines = ["| predictor | kind | split | " + " | ".join(f"{s} shots" for s in shots) + " |",
             "|---|---|---|" + "---|" * len(shots)]
    for who in predictors:  # an episode answered by two sections counts once
        d = df[df["who"] == who].drop_duplicates(["shots", "episode_hash", "seed"])
        for kind in KIND_ORDER:
            for split in SPLIT_ORDER:
                g = d[(d["kind"] == kind) & (d["split"] == split)]
                if g.empty:
                    continue
                cells = [cell(g[g["shots"].astype(int) == s]["score"].to_numpy()) if (g["shots"].astype(int) == s).any() else "–"
                         for s in shots]
                lines.append(f"| {who} | {kind} | {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(df: pd.DataFrame, a: str, bs: list[str]) -> str:
    """LoRA label(s) minus in-context on the same novel episodes, per kind and shots."""
    rows = []
    key = ["episode_hash", "seed"]
    for b in bs:
        for kind in KIND_ORDER:
            for s in sorted(df["shots"].astype(int).unique()):
                sel = (df["kind"] == kind) & (df["split"] == "novel") & (df["shots"].astype(int) == s)
                x = df[(df["who"] == a) & sel].drop_duplicates(key)
                y = df[(df["who"] == b) & sel].drop_duplicates(key)
                m = x.merge(y, on=key, suffixes=("_a", "_b"))
                if m.empty:
                    continue
                d = m["score_b"].to_numpy() - m["score_a"].to_numpy()
                md, lo, hi = cluster_bootstrap_ci(d, n_boot=4000, bounds=(-1.0, 1.0))
                p, sd = cluster_t_test(d)
                need = ""
                if lo <= 0 <= hi:
                    n = units_needed(md, sd)
                    need = ("no difference to detect" if n == float("inf") else
                            "n/a" if not np.isfinite(n) else f"~{int(n)}")
                rows.append({"lora": b, "kind": kind, "shots": s, "n": len(m),
                             "tasks": m["task_id_a"].nunique(), "icl": m["score_a"].mean(),
                             "b": m["score_b"].mean(), "diff": md, "lo": lo, "hi": hi, "p": p,
                             "need": need})
    adj = holm([r["p"] for r in rows]) if rows else []
    lines = [f"| LoRA | kind | shots | episodes | tasks | {a} | LoRA | LoRA - {a} [95%] | Holm p | "
             "episodes to detect it |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r, pa in zip(rows, adj):
        d = _digits(r["lo"], r["hi"])
        lines.append(f"| {r['lora']} | {r['kind']} | {r['shots']} | {r['n']} | {r['tasks']} | "
                     f"{r['icl']:.{d}f} | {r['b']:.{d}f} | {r['diff']:+.{d}f} [{r['lo']:+.{d}f}, "
                     f"{r['hi']:+.{d}f}] | {pa:.2g} | {r['need']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="*", default=["reports/default"])
    ap.add_argument("--icl", default="smollm2-icl")
    ap.add_argument("--lora", action="append",
                    help="LoRA label(s) paired with --icl (repeatable; default smollm2-lora-ttt)")
    ap.add_argument("--shots", default="0,4,16", help="shot counts shown (comma-separated)")
    args = ap.parse_args(argv)
    if not any(Path(r).exists() for r in args.runs):
        print(f"no run directory among {args.runs}; run `make bench` first")
        return
    df = load(args.runs)
    loras = args.lora or ["smollm2-lora-ttt"]
    present = [p for p in [args.icl, *loras, "template-strings", "lookup", "demo-copy"]
               if (df["who"] == p).any()]
    print(table(df, present, [int(x) for x in args.shots.split(",")]))
    print()
    print(paired(df, args.icl, loras))


if __name__ == "__main__":
    main()
