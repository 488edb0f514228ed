"""The answer: per suite, setting and in-context or fine-tuned predictor, which leg of the triad
its evidence bears on, from a small fixed rule set (docs/report.md, "The answer").

Every claim is a paired (or, for the memorization gap, two-sample) difference over independent
units (:mod:`benchmark.stats`), shown with its interval and n; claims below
:data:`~benchmark.stats.MIN_UNITS` units are never decided, and the decided ones survive Holm's
correction across all the claims of the section.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from benchmark import tables as T
from benchmark.hooks import suite_hook
from benchmark.stats import ALPHA, MIN_UNITS, claim, holm, units_needed

#: families whose members get a row: the systems the triad is about
SUBJECT_FAMILIES = ("in-context", "fine-tune")
#: the floor a system must beat on novel tasks: predicting nothing / looking up
FLOOR_FAMILIES = ("lookup",)
FLOOR_PREDICTORS = ("zero",)
#: splits outside any pool's reach in every suite (shifted inputs, directions no pool task spans)
UNREACHABLE_SPLITS = ("ood", "novel-orthogonal")
#: an undecided template comparison whose power estimate needs more than this many times the
#: units already scored counts as "indistinguishable from template selection"
INDISTINGUISHABLE = 10

#: suite name -> ``fn(split, group) -> bool``: extra splits / task groups templates cannot reach
UNREACHABLE_HOOKS: dict[str, Callable[[str, str], bool]] = {}


def register_unreachable(suite: str) -> Callable:
    """Decorator: ``@register_unreachable("my-suite")`` marks splits or task groups (``group`` is
    the suite's ``task_group`` value, or "") that the template library cannot express."""

    def deco(fn: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
        UNREACHABLE_HOOKS[suite] = fn
        return fn

    return deco


def template_unreachable(suite: str, split: str, group: str = "") -> bool:
    """Whether ``split`` (of task group ``group``) lies outside what templates built from the pool
    can reach: the generic splits, a registered hook, or the suite class's
    ``template_unreachable_splits`` tuple / ``template_unreachable(split, group)`` staticmethod."""
    if split in UNREACHABLE_SPLITS:
        return True
    if suite in UNREACHABLE_HOOKS:
        return bool(UNREACHABLE_HOOKS[suite](split, group))
    try:
        from benchmark.registry import suite_class

        cls = suite_class(suite)
    except Exception:
        return False
    if split in tuple(getattr(cls, "template_unreachable_splits", ()) or ()):
        return True
    fn = getattr(cls, "template_unreachable", None)
    return bool(fn(split, group)) if callable(fn) else False


#: suite name -> ``fn(task_id) -> "reachable" | "unreachable" | None``: which tasks the suite's
#: template library can express (built-in ones are imported only when the suite is reported)
TASK_REACHABILITY: dict[str, Callable[[str], str | None]] = {}
BUILTIN_TASK_REACHABILITY = {"strings": "baselines.strings_template:template_reachability"}


def task_reachability(suite: str) -> Callable[[str], str | None] | None:
    """The suite's per-task reachability hook: registered, built in, or the suite class's
    ``template_reachability`` staticmethod; None when it has none."""
    return suite_hook(suite, TASK_REACHABILITY, BUILTIN_TASK_REACHABILITY, "template_reachability")


@dataclass
class Cell:
    """One claim of a row: the numbers, the test and, after Holm, the decision."""

    key: str
    mean: float = np.nan
    lo: float = np.nan
    hi: float = np.nan
    n: int = 0
    unit: str = "episodes"
    n_episodes: int = 0
    p: float = np.nan
    sd: float = np.nan
    other: str = ""          # the predictor compared with
    split: str = "novel"
    shots: str = ""
    two_sample: bool = False
    note: str = ""           # why there is no number ("no template scored", ...)
    p_holm: float = np.nan
    decision: int = 0        # +1 / -1 decided, 0 undecided or untested
    more_needed: float = np.nan

    @property
    def measured(self) -> bool:
        return not self.note and self.n > 0 and np.isfinite(self.mean)

    @property
    def tested(self) -> bool:
        return self.measured and self.n >= MIN_UNITS and np.isfinite(self.p)


@dataclass
class Row:
    suite: str
    setting: str
    predictor: str
    family: str
    updates_weights: bool
    novel: Cell
    cells: dict[str, Cell] = field(default_factory=dict)
    unreachable: list[Cell] = field(default_factory=list)
    leg3: str = ""
    leg3_status: str = ""    # "verified", "declared only", "changed"
    conclusion: str = ""
    rule: str = ""


def _meta(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby("predictor").agg(family=("family", "first"), updates_weights=("updates_weights", "first"))


def _best(lb: pd.DataFrame, suite: str, setting: str, split: str, keep) -> str | None:
    ok = lb[(lb["suite"] == suite) & (lb["setting"] == setting) & (lb["split"] == split)
            & (lb["status"] == "ok")].dropna(subset=["mean_shots_ge1"])
    ok = ok[keep(ok)]
    if ok.empty:
        return None
    i = ok["mean_shots_ge1"].idxmax() if T.higher_is_better(suite) else ok["mean_shots_ge1"].idxmin()
    return str(ok.loc[i, "predictor"])


def best_template(lb: pd.DataFrame, suite: str, setting: str, split: str = "novel") -> str | None:
    """The strongest template-family predictor on ``split`` (whatever its name: dMMSE, a template
    mix, algorithm selection ...), by the mean over the common shot grid."""
    return _best(lb, suite, setting, split, lambda d: d["family"] == "template")


def floor_predictor(lb: pd.DataFrame, suite: str, setting: str) -> str | None:
    """The best of the trivial answers on novel tasks: lookup-family predictors and ``zero``."""
    return _best(lb, suite, setting, "novel",
                 lambda d: d["family"].isin(FLOOR_FAMILIES) | d["predictor"].isin(FLOOR_PREDICTORS))


def reference_learner(lb: pd.DataFrame, suite: str, setting: str) -> str | None:
    """Ridge where it was scored (the Bayes-optimal learner for linear regression), else the best
    reference-family predictor on novel tasks."""
    ok = lb[(lb["suite"] == suite) & (lb["setting"] == setting) & (lb["split"] == "novel")
            & (lb["status"] == "ok")].dropna(subset=["mean_shots_ge1"])
    if "ridge" in set(ok["predictor"]):
        return "ridge"
    return _best(lb, suite, setting, "novel", lambda d: d["family"] == "reference")


def _from_comparison(key: str, c: dict | None, other: str | None, split: str, what: str) -> Cell:
    if other is None:
        return Cell(key, other="", split=split, note=f"no {what} scored")
    if c is None:
        return Cell(key, other=other, split=split, note=f"no episodes shared with {other}")
    return Cell(key, c["diff"], c["lo"], c["hi"], c["n"], c["unit"], c["n_episodes"], c["p"], c["sd"],
                other=other, split=split, shots=c.get("shots", ""))


def _distance(pa: Sequence, pb: Sequence, d: float) -> np.ndarray:
    """Per row of parsed predictions: mean squared difference / d of numeric ones, else the
    fraction of queries answered differently. Flat numeric rows of one length are averaged in
    one array operation (the same numbers as row by row; that loop took seconds per setting)."""
    out = np.full(len(pa), np.nan)
    flat: dict[int, list] = {}  # length -> [(row, a, b)]
    for i, (a, b) in enumerate(zip(pa, pb)):
        if not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b) or not a:
            continue
        try:
            fa, fb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
            if fa.ndim == 1 and fb.ndim == 1:
                flat.setdefault(len(fa), []).append((i, fa, fb))
                continue
            out[i] = float(np.nanmean((fa - fb) ** 2)) / d
        except (TypeError, ValueError):
            out[i] = float(np.mean([json.dumps(u, sort_keys=True) != json.dumps(v, sort_keys=True)
                                    for u, v in zip(a, b)]))
    for group in flat.values():
        rows, fa, fb = zip(*group)
        with warnings.catch_warnings():  # an all-NaN row is NaN, as row by row
            warnings.simplefilter("ignore", RuntimeWarning)
            out[list(rows)] = np.nanmean((np.stack(fa) - np.stack(fb)) ** 2, axis=1) / d
    return out


def distance_cell(df: pd.DataFrame, suite: str, setting: str, pred: str, tmpl: str | None,
                  ref: str | None) -> Cell:
    """Raventós-style: per novel episode, (distance to the template) - (distance to the learner),
    each averaged over the episode's shared shots; > 0: closer to the learner."""
    if tmpl is None or ref is None:
        return Cell("distance", note="needs a template and a reference learner")
    ok = T.ok_rows(df[(df["suite"] == suite) & (df["setting"] == setting) & (df["split"] == "novel")
                      & (df["shots"] >= 1) & df["predictor"].isin([pred, tmpl, ref])])
    if "prediction" not in ok or ok.empty:
        return Cell("distance", other=f"{tmpl} / {ref}", note="no stored predictions")
    pk = ["ep"] if "ep" in ok else T.PAIR_KEY
    wide = ok.drop_duplicates(pk + ["predictor", "shots"]).pivot_table(
        index=pk + ["shots"], columns="predictor", values="prediction", aggfunc="first")
    if any(p not in wide for p in (pred, tmpl, ref)):
        return Cell("distance", other=f"{tmpl} / {ref}", note="no episodes shared by all three")
    wide = wide.dropna(subset=[pred, tmpl, ref])
    dim = 1.0
    if "d" in ok and pd.to_numeric(ok["d"], errors="coerce").notna().any():
        dim = float(pd.to_numeric(ok["d"], errors="coerce").dropna().iloc[0])
    mine = T.json_rows(wide[pred])
    dt = _distance(mine, T.json_rows(wide[tmpl]), dim)
    dr = _distance(mine, T.json_rows(wide[ref]), dim)
    per = pd.DataFrame({"diff": dt - dr}, index=wide.index).dropna()
    if per.empty:
        return Cell("distance", other=f"{tmpl} / {ref}", note="predictions not comparable")
    ep = per.groupby(level=pk)["diff"].mean()
    tids = ok.drop_duplicates(pk).set_index(pk)["task_id"] if "task_id" in ok else None
    c = claim(ep.to_numpy(), ep.index.map(tids).tolist() if tids is not None else None, seed=11)
    return Cell("distance", c.mean, c.lo, c.hi, c.n, c.unit, c.n_episodes, c.p, c.sd,
                other=f"{tmpl} / {ref}")


def _leg3(df: pd.DataFrame, pred: str, updates: bool) -> tuple[str, str]:
    declared = "updates weights" if updates else "frozen"
    rows = df[(df["predictor"] == pred) & (df["status"] == "ok")]
    if "weights_unchanged" not in rows or updates:
        return f"declared {declared}" + ("" if updates else "; not verified"), "declared only"
    v = rows["weights_unchanged"].astype(str).str.lower()
    v = v[v.isin(["true", "false"])]
    if v.empty:
        return f"declared {declared}; not verified", "declared only"
    if (v == "false").any():
        return f"declared frozen, but weights CHANGED in {int((v == 'false').sum())} of {len(v)} rows", "changed"
    return f"frozen, verified unchanged ({len(v)} row{'s' if len(v) != 1 else ''} hashed)", "verified"


def _group(setting: str) -> str:
    """The task group a setting names: a strings ``kind``, or ``shifted-family`` where the held-out
    tasks come from another task family than the pool (linear regression's ``task_prior`` or
    ``task_scale``)."""
    parts = dict(part.split("=", 1) for part in setting.split(", ") if "=" in part)
    if "kind" in parts:
        return parts["kind"]
    if parts.get("task_prior", "gaussian") != "gaussian" or float(parts.get("task_scale", 1.0)) != 1.0:
        return SHIFTED_FAMILY
    return ""


SHIFTED_FAMILY = "shifted-family"


def answer_rows(df: pd.DataFrame, lb: pd.DataFrame, gains: pd.DataFrame | None = None) -> list[Row]:
    """The answer section's rows, claims decided under Holm across all of them."""
    gains = T.shot_gain(df, "novel") if gains is None else gains
    meta = _meta(df)
    lean = df[[c for c in dict.fromkeys(ANSWER_COLUMNS) if c in df]]
    # each setting's rows split once: filtering the whole run's rows again for every comparison
    # took most of the report
    ok_at, all_at = _by_setting(T.ok_rows(lean)), _by_setting(lean)
    rows: list[Row] = []
    leg3: dict[str, tuple[str, str]] = {}
    for suite in pd.unique(df["suite"]).tolist():
        for setting in T.setting_order(st for su, st in ok_at if su == suite):
            s = ok_at[(suite, setting)]
            subjects = [p for p in pd.unique(s.loc[s["split"] == "novel", "predictor"]).tolist()
                        if meta.loc[p, "family"] in SUBJECT_FAMILIES]
            if not subjects:
                continue
            where = s.groupby(["predictor", "split"], sort=False).indices  # rows of (predictor, split)
            dset = all_at[(suite, setting)]  # every row of this setting (failures too)
            pairs = T.ScoredRows(dset)
            floor = floor_predictor(lb, suite, setting)
            ref = reference_learner(lb, suite, setting)
            tmpl = best_template(lb, suite, setting, "novel")
            unreach = [sp for sp in pd.unique(s["split"]).tolist()
                       if sp != "novel" and template_unreachable(suite, sp, _group(setting))]
            if template_unreachable(suite, "novel", _group(setting)):
                unreach.insert(0, "novel")
            sign = 1.0 if T.higher_is_better(suite) else -1.0
            for pred in sorted(subjects, key=lambda p: (T.FAMILY_ORDER.index(meta.loc[p, "family"]), p)):
                upd = bool(meta.loc[pred, "updates_weights"])
                pos = _rows_of(s, where, pred, "novel")
                if pos["shots"].max() > 0:
                    pos = pos[pos["shots"] >= 1]
                em = T.episode_means(pos, ["predictor"])
                c = claim(em["score"].to_numpy(), em["task_id"].tolist() if "task_id" in em else None, seed=10)
                novel = Cell("novel", c.mean, c.lo, c.hi, c.n, c.unit, c.n_episodes,
                             shots=T.shot_label(pos["shots"].unique()))
                row = Row(suite, setting, pred, meta.loc[pred, "family"], upd, novel)
                cm = row.cells
                cm["floor"] = _from_comparison("floor", _cmp(pairs, pred, floor, suite, setting, "novel"),
                                               floor, "novel", "lookup or zero predictor")
                cm["reference"] = _from_comparison("reference", _cmp(pairs, pred, ref, suite, setting, "novel"),
                                                   ref, "novel", "reference learner")
                cm["template"] = _from_comparison("template", _cmp(pairs, pred, tmpl, suite, setting, "novel"),
                                                  tmpl, "novel", "template predictor")
                for sp in unreach:
                    t_sp = best_template(lb, suite, setting, sp)
                    if (pred, sp) not in where:
                        continue
                    row.unreachable.append(_from_comparison(f"unreachable:{sp}", _cmp(pairs, pred, t_sp, suite, setting, sp),
                                                            t_sp, sp, "template predictor"))
                reach = task_reachability(suite)
                if reach is not None:
                    row.unreachable += _unreachable_tasks(dset, s, reach, pred, suite, setting)
                cm["distance"] = distance_cell(dset, suite, setting, pred, tmpl, ref)
                mem = _rows_of(s, where, pred, "memorized")
                if len(mem):
                    if mem["shots"].max() > 0:
                        mem = mem[mem["shots"] >= 1]
                    t = T.two_sample(T.episode_means(mem, ["predictor"]), em, sign, seed=12)
                    cm["gap"] = Cell("gap", t["mean"], t["lo"], t["hi"], t["n"], t["unit"], t["n_episodes"],
                                     t["p"], t["sd"], split="memorized vs novel", two_sample=True)
                else:
                    cm["gap"] = Cell("gap", note="no memorized episodes scored")
                g = gains[(gains["suite"] == suite) & (gains["setting"] == setting) & (gains["predictor"] == pred)]
                if len(g) and g.iloc[0]["paired"]:
                    r = g.iloc[0]
                    cm["gain"] = Cell("gain", r["gain"], r["lo"], r["hi"], int(r["n"]), r["unit"],
                                      int(r["n_episodes"]), r["p"], r["sd"],
                                      shots=f"{r['from_shots']}->{r['to_shots']}")
                else:
                    cm["gain"] = Cell("gain", note="one shot count only")
                if pred not in leg3:
                    leg3[pred] = _leg3(lean, pred, upd)
                row.leg3, row.leg3_status = leg3[pred]
                rows.append(row)
    decide_all(rows)
    for r in rows:
        r.rule, r.conclusion = conclude(r)
    return rows


#: the columns the answer reads (a run's rows have dozens, and splitting them by setting copies them)
ANSWER_COLUMNS = (*T.PAIR_KEY, "ep", "setting", "predictor", "family", "shots", "task_id", "status", "score",
                  "prediction", "d", "weights_unchanged")


def _by_setting(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(suite, setting) -> that setting's rows, in the frame's order."""
    return dict(list(df.groupby(["suite", "setting"], sort=False)))


def _rows_of(s: pd.DataFrame, where: dict, pred: str, split: str) -> pd.DataFrame:
    """A setting's rows of one predictor and split, from the positions grouped once (``where``)."""
    return s.iloc[where.get((pred, split), np.zeros(0, dtype=np.intp))]


UNREACHABLE_TASKS = "novel, unreachable tasks"


def _unreachable_tasks(df: pd.DataFrame, s: pd.DataFrame, reach: Callable, pred: str, suite: str,
                       setting: str) -> list[Cell]:
    """The comparison with the best template on the novel episodes whose task the suite's
    template library cannot express (its ``template_reachability`` hook)."""
    nov = s[s["split"] == "novel"]
    kinds = {t: _safe(reach, t) for t in nov["task_id"].unique()}
    bad = [t for t, k in kinds.items() if k == "unreachable"]
    if not bad or not (nov.loc[nov["task_id"].isin(bad), "predictor"] == pred).any():
        return []
    sub = df[(df["suite"] == suite) & (df["setting"] == setting) & (df["split"] == "novel")
             & df["task_id"].isin(bad)].assign(split=UNREACHABLE_TASKS)
    ok = T.ok_rows(sub)
    tm = ok[ok["family"] == "template"].groupby("predictor")["score"].mean()
    if tm.empty:
        return [Cell(f"unreachable:{UNREACHABLE_TASKS}", split=UNREACHABLE_TASKS, note="no template predictor scored")]
    other = str(tm.idxmax() if T.higher_is_better(suite) else tm.idxmin())
    return [_from_comparison(f"unreachable:{UNREACHABLE_TASKS}", _cmp(sub, pred, other, suite, setting, UNREACHABLE_TASKS),
                             other, UNREACHABLE_TASKS, "template predictor")]


def _safe(fn: Callable, t: str):
    try:
        return fn(t)
    except Exception:
        return None


def _cmp(df, a, b, suite, setting, split):
    if b is None or a == b:
        return None
    return T.paired_comparison(df, a, b, suite, setting, split)


def all_cells(rows: list[Row]) -> list[Cell]:
    return [c for r in rows for c in list(r.cells.values()) + r.unreachable]


def decide_all(rows: list[Row]) -> int:
    """Holm across every tested claim of the section; returns the number of tests.

    A claim is decided (+1 / -1) when its Holm-adjusted p-value is below :data:`ALPHA` and its 95%
    interval excludes zero on the same side. Undecided claims get the number of further units a
    test at the Bonferroni level ALPHA / m would need (an upper bound for Holm) to reach 80% power
    at the observed effect and standard deviation.
    """
    cells = all_cells(rows)
    tested = [c for c in cells if c.tested]
    adj = holm([c.p for c in tested])
    for c, pa in zip(tested, adj):
        c.p_holm = float(pa)
        side = 1 if c.lo > 0 else -1 if c.hi < 0 else 0
        c.decision = side if pa < ALPHA else 0
    m = max(1, len(tested))
    for c in cells:
        if c.decision == 0 and c.measured and np.isfinite(c.sd) and c.n >= 2:
            need = units_needed(c.mean, c.sd, alpha=ALPHA / m) * (2 if c.two_sample else 1)
            c.more_needed = max(need - c.n, 1.0) if np.isfinite(need) else np.inf
    for r in rows:
        r.n_tests = len(tested)  # type: ignore[attr-defined]
    return len(tested)


#: beyond this many times the units already scored, the estimate is reported as "over Nx"
MAX_FACTOR = 100


def _more(c: Cell) -> str:
    if not np.isfinite(c.more_needed):
        if c.more_needed == np.inf:  # the observed effect is exactly 0
            return f"more {c.unit} than any run gives (the difference is 0 over n={c.n})"
        return "more data"
    if c.more_needed > MAX_FACTOR * max(c.n, 1):
        return f"over {MAX_FACTOR}x the {c.unit} scored"
    return f"about {int(c.more_needed)} more {c.unit}"


def too_few(c: Cell) -> str:
    """The text of a claim below the minimum number of independent units."""
    if c.unit == "tasks":
        return f"too few tasks (n={c.n} tasks over {c.n_episodes} episodes; minimum {MIN_UNITS})"
    return f"too few episodes (n={c.n}; minimum {MIN_UNITS})"


def _unreachable_decision(r: Row) -> int | None:
    """+1 when it beats the best template on every template-unreachable split scored, -1 when it
    is worse on one, 0 when undecided; None when none was scored against a template."""
    cells = [c for c in r.unreachable if c.measured]
    if not cells:
        return None
    if any(c.decision < 0 for c in cells):
        return -1
    if all(c.decision > 0 for c in cells):
        return 1
    return 0


def conclude(r: Row) -> tuple[str, str]:
    """(rule id, one-line conclusion) from the fixed rule set documented in docs/report.md."""
    fl, tn, dist = r.cells["floor"], r.cells["template"], r.cells["distance"]
    tu = _unreachable_decision(r)
    if not fl.measured:
        if not tn.measured and tu is None:
            return "R0", f"cannot decide: {fl.note or 'no floor'} and no template to compare with"
        rule, text = conclude_templates(r, tn, tu, dist)
        return rule, f"{text} (no lookup/zero floor scored)"
    if not fl.tested:
        return "R1", f"cannot decide: {too_few(fl)}"
    if fl.decision < 0:
        return "R2", "worse than the lookup/zero floor on novel tasks: no support for leg 1 here"
    if fl.decision == 0:
        if fl.more_needed == np.inf:
            return "R3", f"not above the floor on novel tasks: the mean difference is 0 over n={fl.n} {fl.unit}"
        return "R3", f"cannot decide whether it beats the floor on novel tasks: needs {_more(fl)}"
    return conclude_templates(r, tn, tu, dist)


def conclude_templates(r: Row, tn: Cell, tu: int | None, dist: Cell) -> tuple[str, str]:
    """Rules R4-R10: template selection, then leg 3."""
    if not tn.measured and tu is None:
        return "R4", "does well on novel tasks; no template predictor scored here, so template selection is not ruled out"
    small = [c for c in [tn] + r.unreachable if c.measured and not c.tested]
    if (tn.measured and tn.decision < 0) or tu == -1:
        return "R5", "no better than template selection: a template predictor does better"
    beyond = (tu == 1 and tn.decision >= 0) or (tu is None and tn.decision > 0)
    if not beyond:
        if dist.measured and dist.decision < 0:
            return "R6", "indistinguishable from template selection (its predictions are closer to the template's)"
        if small:
            return "R7", f"cannot decide whether it learns beyond templates: {too_few(small[0])}"
        open_ = [c for c in [tn] + r.unreachable if c.measured and c.decision == 0]
        need = max(open_, key=lambda c: c.more_needed if np.isfinite(c.more_needed) else 1e18) if open_ else tn
        if open_ and all(c.more_needed > INDISTINGUISHABLE * c.n for c in open_):
            return "R6", (f"indistinguishable from template selection (no difference over n={need.n} "
                          f"{need.unit}; deciding would take {_more(need)})")
        return "R7", f"cannot decide whether it learns beyond templates: needs {_more(need)}"
    if r.updates_weights:
        return "R8", "learns beyond templates by updating its weights at runtime: consistent with leg 3"
    if r.leg3_status == "changed":
        return "R9", "learns beyond templates, but its weights changed although declared frozen: leg 3 untestable"
    how = "weights verified frozen" if r.leg3_status == "verified" else "weights declared frozen, not verified"
    return "R10", f"learns at runtime with frozen weights ({how}): undermines leg 3 for this model"


RULES = [
    ("R0", "Neither a floor (lookup/zero) nor a template predictor shares episodes with it: nothing to "
           "conclude. (With templates but no floor, R4-R10 apply and the conclusion says no floor was scored.)"),
    ("R1", f"The novel-vs-floor claim rests on fewer than {MIN_UNITS} independent units: \"too few episodes\"."),
    ("R2", "Decided worse than the floor on novel tasks: no support for leg 1."),
    ("R3", "Not decided better than the floor: cannot decide (with the episodes a test would need)."),
    ("R4", "Better than the floor, but no template-family predictor was scored: template selection not ruled out."),
    ("R5", "Decided worse than the best template predictor on novel tasks or on a template-unreachable split."),
    ("R6", "Not better than templates, and either its predictions are decided closer to the template's than to "
           f"the learner's, or every template comparison is undecided although a decision would need more than "
           f"{INDISTINGUISHABLE}x the units scored: indistinguishable from template selection."),
    ("R7", "Otherwise not decided better than templates: cannot decide (too few units, or the episodes needed)."),
    ("R8", "Better than the best template on template-unreachable splits (or, where none was scored, on novel "
           "tasks) and not worse on novel tasks, updating its weights: learning at runtime, consistent with leg 3."),
    ("R9", "As R8 with frozen weights declared, but the hash of its parameters changed during predict."),
    ("R10", "As R8 with frozen weights: it learns at runtime without weight updates, undermining leg 3."),
]


def rows_frame(rows: list[Row]) -> pd.DataFrame:
    """The rows as a tidy table (tables/answer.csv): one line per row and claim."""
    out = []
    for r in rows:
        for c in [r.novel] + list(r.cells.values()) + r.unreachable:
            out.append({"suite": r.suite, "setting": r.setting, "predictor": r.predictor,
                        "family": r.family, "updates_weights": r.updates_weights, "claim": c.key,
                        "split": c.split, "vs": c.other, "shots": c.shots, "mean": c.mean, "lo": c.lo,
                        "hi": c.hi, "n": c.n, "unit": c.unit, "n_episodes": c.n_episodes, "p": c.p,
                        "p_holm": c.p_holm, "decision": c.decision, "more_needed": c.more_needed,
                        "note": c.note, "leg3": r.leg3, "rule": r.rule, "conclusion": r.conclusion,
                        "tests": getattr(r, "n_tests", 0)})
    return pd.DataFrame(out)
