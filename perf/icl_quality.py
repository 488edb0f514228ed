"""Quality targets of the shipped in-context checkpoints (issue: the transition).

Evaluates every shipped checkpoint on fresh episodes (5,000 per shot count by default) and
prints the ratios to ridge, the distances to dMMSE and ridge, and whether each target holds.
Run: .venv/bin/python perf/icl_quality.py [--episodes 5000]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from benchmark.transition import transition_table

POOLS = [4, 16, 64, 256, 1024, "unlimited"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--episodes", type=int, default=5000)
    ap.add_argument("--pools", default=",".join(map(str, POOLS)))
    ap.add_argument("--csv", help="also write the table here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    df = transition_table(args.pools.split(","), episodes=args.episodes)
    secs = time.perf_counter() - t0
    pd.set_option("display.width", 200)
    print(df.round(4).to_string(index=False))
    if args.csv:
        df.to_csv(args.csv, index=False)
    icl = df[df.predictor == "icl-transformer"].set_index(["pool_size", "split"])
    ridge = df[df.predictor == "ridge"].set_index(["pool_size", "split"])
    print()
    if ("unlimited", "novel") in icl.index:
        cols = ["error_at_8", "error_at_16", "mean_error_1_to_max"]
        r = icl.loc[("unlimited", "novel"), cols].astype(float) / ridge.loc[("unlimited", "novel"), cols].astype(float)
        for col in cols:
            ok = r[col] <= 1.2
            print(f"unlimited pool, novel, {col}: {r[col]:.3f}x ridge  -> {'OK' if ok else 'MISSED'} (target <= 1.2x)")
    if ("4", "novel") in icl.index:
        s = icl.loc[("4", "seen-task"), "mean_error_1_to_max"] / ridge.loc[("4", "seen-task"), "mean_error_1_to_max"]
        n = icl.loc[("4", "novel"), "mean_error_1_to_max"] / ridge.loc[("4", "novel"), "mean_error_1_to_max"]
        print(f"pool 4, seen-task mean error: {s:.3f}x ridge -> {'OK' if s <= 0.5 else 'MISSED'} (target <= 0.5x)")
        print(f"pool 4, novel mean error:     {n:.3f}x ridge -> {'OK' if n >= 2 else 'MISSED'} (target >= 2x)")
        for split in ("seen-task", "novel"):
            row = icl.loc[("4", split)]
            closer = row["distance_to_template-dmmse"] < row["distance_to_ridge"]
            print(f"pool 4, {split}: distance to dMMSE {row['distance_to_template-dmmse']:.4f} vs ridge "
                  f"{row['distance_to_ridge']:.4f} -> {'OK' if closer else 'MISSED'} (closer to dMMSE)")
    print("\ndistance crossing (novel): pool sizes where the transformer is closer to ridge than to dMMSE:")
    for (m, split), row in icl.iterrows():
        if split == "novel" and pd.notna(row.get("distance_to_template-dmmse")):
            side = "ridge" if row["distance_to_ridge"] < row["distance_to_template-dmmse"] else "dMMSE"
            print(f"  pool {m:>9}: closer to {side} (d_dmmse={row['distance_to_template-dmmse']:.4f}, "
                  f"d_ridge={row['distance_to_ridge']:.4f}, trained {row['train_steps']} steps)")
    n_eps = args.episodes * 16 * 2 * len(icl.index.get_level_values(0).unique())
    print(f"\nevaluated {n_eps} transformer episodes (all predictors) in {secs:.1f} s")


if __name__ == "__main__":
    main()
