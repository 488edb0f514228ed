"""Speed-up of 2 local worker processes over 1 on the default grid (configs/default.toml; by
default its linear-regression section: 3264 cells).

Each run starts in a fresh temporary directory (nothing to resume) as its own `triadbench run`
process, so both timings include starting the workers. Also checks that both runs wrote the same
results (timing columns aside). Usage: python perf/workers_speedup.py [--episodes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def timed_run(workers: int, episodes: int, config: str, suite: str, out: Path) -> float:
    """Wall time of one fresh `triadbench run` with ``workers`` local worker processes."""
    cmd = [sys.executable, "-m", "benchmark.cli", "run", "--config", config, "--out", str(out),
           "--episodes", str(episodes), "--executor", "local", "--workers", str(workers),
           "--no-report", "--quiet"] + (["--suite", suite] if suite else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20, help="episodes per cell (default 20)")
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.toml"))
    ap.add_argument("--suite", default="linear-regression",
                    help="only this suite's sections of the config ('' for all: the ARC and "
                         "strings sections run SmolLM2 and take hours on a CPU)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="triadbench-speedup-") as tmp:
        walls = {}
        for workers in (1, 2):
            out = Path(tmp) / f"w{workers}"
            walls[workers] = timed_run(workers, args.episodes, args.config, args.suite, out)
            m = json.loads((out / "manifest.json").read_text())
            busy = sum(t["fit_seconds"] + t["predict_seconds"] for t in m["timings"].values())
            print(f"{workers} worker(s): {walls[workers]:.1f} s wall; {m['cells']['total']} cells; "
                  f"{busy:.1f} s inside fit/predict summed over cells; executor {m['executor']!r}",
                  flush=True)
        drop = ["fit_seconds", "predict_seconds"]
        a = pd.read_csv(Path(tmp) / "w1" / "results.csv", dtype=str).drop(columns=drop)
        b = pd.read_csv(Path(tmp) / "w2" / "results.csv", dtype=str).drop(columns=drop)
        same = a.equals(b)
        if not same and a.shape == b.shape:  # name what differs (e.g. a checkpoint that
            diff = (a != b) & ~(a.isna() & b.isna())  # appeared between the two runs)
            rows = diff.any(axis=1)
            print("differing rows by predictor:", a[rows].groupby("predictor").size().to_dict(),
                  "columns:", list(diff.columns[diff.any()]))
    print(f"rows: {len(a)}; identical results with 1 and 2 workers: {same}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"speed-up of 2 workers over 1: {walls[1] / walls[2]:.2f}x "
          f"({args.episodes} episodes per cell, {Path(args.config).name}, "
          f"suite {args.suite or 'all'})")


if __name__ == "__main__":
    main()
