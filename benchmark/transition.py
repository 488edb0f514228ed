"""The lookup -> template -> learner transition, measured directly on the shipped checkpoints."""

from __future__ import annotations

from typing import Iterable

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
