"""The linear-regression suite's own report section: the pool-size transition and Raventós et al.'s
prediction-distance comparison, with the training budgets of the in-context checkpoints.

Registered as a built-in section provider (``benchmark.report.BUILTIN_SECTIONS``) and imported
only when a report holds linear-regression results.
"""

from __future__ import annotations

import pandas as pd

from benchmark import figures as F
from benchmark import tables as T

SUITE = "linear-regression"


def steps_note(cards: pd.DataFrame) -> str:
    """The training steps (and minutes) of each shipped in-context checkpoint, for the captions."""
    if cards.empty:
        return ("Training steps of the in-context checkpoints: no checkpoint cards found under "
                "data/checkpoints/linear-regression, so they are unknown.")
    parts = []
    for _, c in cards.sort_values("pool_size", key=lambda s: s.map(T.pool_value)).iterrows():
        wall = f", {float(c['wall_seconds']) / 60:.0f} min" if pd.notna(c["wall_seconds"]) else ""
        parts.append(f"M={c['pool_size']}: {c['steps']} steps{wall}")
    return ("Training of the in-context checkpoints: " + "; ".join(parts) + ". Short training makes "
            "models look ridge-like, so where the transition happens depends on these budgets.")


def report_sections(results: pd.DataFrame, ctx) -> list:
    """The "Pool-size transition" section (empty list when only one pool size was run)."""
    from benchmark.report import Section

    trans = T.transition(results, SUITE)
    if trans.empty:
        return []
    cards = T.checkpoint_cards(SUITE)
    if len(cards):
        cards.to_csv(ctx.tab_dir / "checkpoints.csv", index=False)
    note = steps_note(cards)
    notes = []  # the figures are drawn in the background (ctx.submit); the report waits for them
    figs = [ctx.submit(F.transition, trans, SUITE, ctx.metric, ctx.styler, ctx.fig_dir, note)]
    subject = "icl-transformer" if "icl-transformer" in set(results["predictor"]) else None
    dist = T.prediction_distance(results, SUITE, subject) if subject else pd.DataFrame()
    if not dist.empty:  # F.distance draws nothing for an empty table
        figs.append(ctx.submit(F.distance, dist, SUITE, ctx.fig_dir, note))
    elif subject is None:
        notes.append(f"{SUITE}: no icl-transformer results, so the distance-to-dMMSE/ridge "
                     "comparison is not drawn.")
    else:
        notes.append(f"{SUITE}: icl-transformer has no scored episodes shared with template-dmmse "
                     "or ridge, so the distance comparison is not drawn.")
    intro = ("Novel- and seen-task error against the number of pretraining tasks M: a lookup table "
             "and template selection need their task in the pool, a learner does not. Intervals "
             "resample episodes (tasks where episodes share tasks).")
    return [Section("transition", "Pool-size transition", figures=figs, paragraphs=[intro], notes=notes,
                    suite=SUITE)]
