"""Time the report on a synthetic ~300k-row run, and the grouped bootstrap against a per-group loop.

Prints the build time of ``build_report`` (target: well under 30 s) and the speed ratio of
``tables.grouped_bootstrap`` (all groups resampled at once) over calling ``stats.bootstrap_ci``
once per group, both measured here, in this run.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmark.report import build_report  # noqa: E402
from benchmark.stats import bootstrap_ci  # noqa: E402
from benchmark.tables import grouped_bootstrap  # noqa: E402

PREDICTORS = {"lookup": "lookup", "template-dmmse": "template", "template-best": "template",
              "icl-transformer": "in-context", "ridge": "reference", "ols": "reference",
              "knn": "reference", "zero": "reference"}


def synthetic_run(out: Path, episodes: int = 100, seeds: int = 2) -> int:
    """A results.csv shaped like a linear-regression pool-size sweep (scores are random)."""
    rng = np.random.default_rng(0)
    parts = []
    for pool in ("4", "16", "unlimited"):
        cfg = json.dumps({"d": 8, "max_shots": 16, "pool_size": pool})
        for pred, fam in PREDICTORS.items():
            for split in ("memorized", "seen-task", "novel", "ood"):
                for seed in range(seeds):
                    n = 17 * episodes
                    shots = np.repeat(np.arange(17), episodes)
                    score = rng.gamma(2.0, 0.5, n) / (1 + shots * rng.random())
                    preds = rng.normal(size=(n, 4)).round(5)
                    parts.append(pd.DataFrame({
                        "suite": "linear-regression", "split": split, "predictor": pred, "family": fam,
                        "updates_weights": False, "shots": shots,
                        "task_id": np.tile([f"{split}-task-{i % (episodes // 4) if split != 'novel' else i}"
                                            for i in range(episodes)], 17),
                        "episode_id": np.tile([f"{split}-{i}" for i in range(episodes)], 17),
                        "seed": seed, "metric": "mse/d", "score": score, "status": "ok", "error": "",
                        "prediction": ["[" + ", ".join(map(str, p)) + "]" for p in preds],
                        "suite_config": cfg, "predictor_params": "{}", "cell": f"{pool}{pred}{split}{seed}",
                        "fit_seconds": 0.0, "predict_seconds": 0.0, "pool_size": pool}))
    df = pd.concat(parts, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False)
    return len(df)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        rows = synthetic_run(run)
        t0, c0 = time.perf_counter(), time.process_time()
        build_report([run], Path(tmp) / "report")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"build_report: {rows} rows in {wall:.1f} s wall, {cpu:.1f} s CPU")

    rng = np.random.default_rng(1)
    groups, n = 1632, 60  # a pool-size sweep's curves: 3 settings x 4 splits x 8 predictors x 17 shots
    d = pd.DataFrame({"g": np.repeat(np.arange(groups), n), "score": rng.gamma(2.0, 0.5, groups * n)})
    t0 = time.perf_counter()
    grouped_bootstrap(d, ["g"], n_boot=1000)
    fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _, g in d.groupby("g"):
        bootstrap_ci(g["score"].to_numpy(), n_boot=1000)
    slow = time.perf_counter() - t0
    print(f"bootstrap of {groups} groups x {n} episodes, 1000 resamples: grouped {fast:.2f} s, "
          f"per-group loop {slow:.2f} s, ratio {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
