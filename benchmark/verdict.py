"""Plain-sentence verdicts per suite setting and predictor, each computed from the numbers with its
interval; never hand-written. (The answer section's Holm-corrected claims live in
:mod:`benchmark.answer`; these longer sentences follow it in the report.)

Two things are kept apart on purpose: *improves with demonstrations* (its novel-task score gets
better from the fewest to the most shots; template selectors do this too) and *learns beyond
templates* (it beats the strongest template-family predictor; see :mod:`benchmark.answer`).
"""

from __future__ import annotations

import pandas as pd

from benchmark import tables as T
from benchmark.stats import MIN_UNITS


def fmt(x: float) -> str:
    """Three significant figures, the precision the intervals support."""
    if pd.isna(x):
        return "n/a"
    return f"{x:.3g}"


def interval(lo: float, hi: float) -> str:
    return f"95% CI [{fmt(lo)}, {fmt(hi)}]"


def decide(lo: float, hi: float, n: int | None = None) -> int:
    """+1 when the interval is above zero, -1 when below, 0 when it includes zero (undecided) or
    rests on fewer than :data:`~benchmark.stats.MIN_UNITS` independent units (``n``)."""
    if pd.isna(lo) or pd.isna(hi) or (n is not None and n < MIN_UNITS):
        return 0
    if lo > 0:
        return 1
    if hi < 0:
        return -1
    return 0


def reference_learner(lb: pd.DataFrame, suite: str, setting: str) -> str | None:
    """Ridge where it was scored; otherwise the best reference-family predictor on novel tasks."""
    ok = lb[(lb["suite"] == suite) & (lb["setting"] == setting) & (lb["split"] == "novel")
            & (lb["status"] == "ok")].dropna(subset=["mean_shots_ge1"])
    if "ridge" in set(ok["predictor"]):
        return "ridge"
    return _best(ok[ok["family"] == "reference"], suite)


def best_template(lb: pd.DataFrame, suite: str, setting: str) -> str | None:
    ok = lb[(lb["suite"] == suite) & (lb["setting"] == setting) & (lb["split"] == "novel")
            & (lb["status"] == "ok")].dropna(subset=["mean_shots_ge1"])
    return _best(ok[ok["family"] == "template"], suite)


def _best(g: pd.DataFrame, suite: str) -> str | None:
    if g.empty:
        return None
    i = g["mean_shots_ge1"].idxmax() if T.higher_is_better(suite) else g["mean_shots_ge1"].idxmin()
    return str(g.loc[i, "predictor"])


def _comparison(df: pd.DataFrame | T.ScoredRows, pred: str, other: str | None, role: str, key: str, suite: str,
                setting: str, unit: str) -> tuple[str, dict]:
    if other is None:
        return f"No {role} was scored here, so there is nothing to compare with.", {}
    if other == pred:
        return f"It is itself the {role} here.", {}
    c = T.paired_comparison(df, pred, other, suite, setting, "novel")
    if c is None:
        return f"It shares no scored novel episodes with the {role} ({other}).", {}
    better_word = "higher" if T.higher_is_better(suite) else "lower"
    worse_word = "lower" if T.higher_is_better(suite) else "higher"
    d = decide(c["lo"], c["hi"], c["n"])
    head = (f"Against the {role} ({other}) on novel tasks (mean over shots {c['shots']}, paired by "
            f"episode, n={c['n']} {c['unit']}), its {unit} is {fmt(c['mean_a'])} vs {fmt(c['mean_b'])}")
    if c["n"] < MIN_UNITS:
        text = (f"{head}; the difference {fmt(c['diff'])} ({interval(c['lo'], c['hi'])}) rests on too few "
                f"{c['unit']} (minimum {MIN_UNITS}), so no claim is made.")
    elif d > 0:
        text = f"{head}: {better_word} by {fmt(c['diff'])} ({interval(c['lo'], c['hi'])}), so it does better."
    elif d < 0:
        text = (f"{head}: {worse_word} by {fmt(-c['diff'])} ({interval(-c['hi'], -c['lo'])}), "
                "so it does worse.")
    else:
        text = (f"{head}; the difference {fmt(c['diff'])} ({interval(c['lo'], c['hi'])}) includes zero, "
                "so the data cannot decide.")
    return text, {f"vs_{key}": other, f"vs_{key}_diff": c["diff"], f"vs_{key}_lo": c["lo"],
                  f"vs_{key}_hi": c["hi"], f"vs_{key}_n": c["n"], f"vs_{key}_decision": d}


def verdicts(df: pd.DataFrame, lb: pd.DataFrame, gains: pd.DataFrame | None = None) -> pd.DataFrame:
    """One paragraph per suite, setting and scored predictor, with the numbers behind it.

    Columns: suite, setting, predictor, text, and the gain / comparison intervals and decisions
    (+1 better, -1 worse, 0 undecided), so that tests and other tools need not parse sentences.
    """
    gains = T.shot_gain(df, "novel") if gains is None else gains
    meta = df.groupby("predictor").agg(family=("family", "first"),
                                       updates_weights=("updates_weights", "first"))
    rows = []
    novel = T.ScoredRows(df[df["split"] == "novel"])  # split once for all the comparisons below
    scored = lb[(lb["split"] == "novel") & (lb["status"] == "ok")]
    for (suite, setting), g in scored.groupby(["suite", "setting"], sort=False):
        unit = "score" if T.higher_is_better(suite) else "error"
        tmpl = best_template(lb, suite, setting)
        ref = reference_learner(lb, suite, setting)
        for pred in g["predictor"]:
            fam = meta.loc[pred, "family"] if pred in meta.index else "?"
            upd = bool(meta.loc[pred, "updates_weights"]) if pred in meta.index else False
            parts = [f"**{pred}** ({fam}; {'updates its weights' if upd else 'weights frozen'} at runtime)."]
            rec = {"suite": suite, "setting": setting, "predictor": pred, "family": fam,
                   "updates_weights": upd}
            gr = gains[(gains["suite"] == suite) & (gains["setting"] == setting) & (gains["predictor"] == pred)]
            if len(gr):
                r = gr.iloc[0]
                d = decide(r["lo"], r["hi"], r["n"])
                head = (f"On novel tasks its {unit} goes from {fmt(r['score_from'])} at {r['from_shots']} "
                        f"shots to {fmt(r['score_to'])} at {r['to_shots']} shots")
                if not r["paired"]:
                    parts.append(f"{head}, but no episode was scored at both, so nothing is paired and no "
                                 "claim is made.")
                elif r["n"] < MIN_UNITS:
                    parts.append(f"{head} (paired gain {fmt(r['gain'])}, {interval(r['lo'], r['hi'])}): too few "
                                 f"{r['unit']} (n={int(r['n'])}; minimum {MIN_UNITS}), so no claim is made.")
                elif d > 0:
                    tail = (" Template selectors improve with demonstrations too, so this alone is not "
                            "learning beyond templates." if fam != "template" else
                            " It is a template selector: improving with demonstrations is not learning "
                            "beyond templates.")
                    parts.append(f"{head}: it improves with demonstrations (paired gain {fmt(r['gain'])}, "
                                 f"{interval(r['lo'], r['hi'])}, n={int(r['n'])} {r['unit']}).{tail}")
                elif d < 0:
                    parts.append(f"{head}: it gets worse with demonstrations (paired gain {fmt(r['gain'])}, "
                                 f"{interval(r['lo'], r['hi'])}).")
                elif r["lo"] == 0 and r["hi"] == 0:
                    parts.append(f"{head}: every paired difference is zero, so its {unit} does not "
                                 "change with demonstrations.")
                else:
                    parts.append(f"{head}; the paired gain {fmt(r['gain'])} ({interval(r['lo'], r['hi'])}) "
                                 "includes zero, so the data cannot decide whether demonstrations help.")
                rec.update(gain=r["gain"], gain_lo=r["lo"], gain_hi=r["hi"], gain_n=r["n"], gain_decision=d)
            else:
                parts.append("It was scored at one shot count only, so no runtime-learning gain is measured.")
            for other, role, key in ((tmpl, "best template predictor", "template"),
                                     (ref, "reference learner", "reference")):
                rec[f"vs_{key}"] = other
                text, nums = _comparison(novel, pred, other, role, key, suite, setting, unit)
                parts.append(text)
                rec.update(nums)
            if fam == "template":
                rec["beyond_templates"] = "no: it is a template predictor"
            elif rec.get("vs_template_decision") == 1:
                rec["beyond_templates"] = "yes on novel tasks (see the answer for unreachable splits)"
            elif rec.get("vs_template_decision") == -1:
                rec["beyond_templates"] = "no: the best template does better"
            elif tmpl is None:
                rec["beyond_templates"] = "no template scored"
            else:
                rec["beyond_templates"] = "cannot decide"
            rec["text"] = " ".join(parts)
            rows.append(rec)
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=["suite", "setting", "predictor", "text"])
    return out
