"""Build the comparison report (report.html, summary.md, figures/, tables/) from run directories.

``build_report([run_a, run_b], out)`` merges the runs (cells present in both are counted once),
aggregates with intervals over the independent unit (:mod:`benchmark.tables`,
:mod:`benchmark.stats`), opens with the answer (:mod:`benchmark.answer`), draws the figures
(:mod:`benchmark.figures`) and writes sentences computed from the numbers
(:mod:`benchmark.verdict`). The pages are Jinja2 templates (``benchmark/templates/``) filled
with a generic core and the sections suites contribute (:func:`register_section`, a built-in
provider, or a ``report_sections(results, ctx)`` method); suites may also contribute a gallery
(:func:`register_gallery` or a ``gallery(results, out_dir)`` method).
"""

from __future__ import annotations

import base64
import html
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from benchmark import figures as F
from benchmark import tables as T
from benchmark.answer import RULES, answer_rows, rows_frame
from benchmark.hooks import suite_hook
from benchmark.stats import ALPHA, MIN_UNITS
from benchmark.verdict import fmt, verdicts

#: suite name -> ``fn(results: DataFrame, out_dir: Path) -> list of paths or (path, caption)``
GALLERIES: dict[str, Callable[[pd.DataFrame, Path], Any]] = {}


def register_gallery(suite: str) -> Callable:
    """Decorator: ``@register_gallery("arc")`` adds a function drawing example figures for a suite.

    Example
    -------
    >>> @register_gallery("my-suite")
    ... def my_gallery(results, out_dir):
    ...     return []          # paths of PNG files written under out_dir, or (path, caption) pairs
    >>> "my-suite" in GALLERIES
    True
    """

    def deco(fn: Callable) -> Callable:
        GALLERIES[suite] = fn
        return fn

    return deco


#: built-in galleries, imported only when a report holds that suite ("module:function")
BUILTIN_GALLERIES = {"arc": "benchmark.arc_gallery:draw_gallery"}


def gallery_hook(suite: str) -> Callable | None:
    """The registered gallery function for a suite, else a built-in one, else the suite class's
    ``gallery`` (a staticmethod or classmethod), else None."""
    return suite_hook(suite, GALLERIES, BUILTIN_GALLERIES, "gallery")


# -- building ---------------------------------------------------------------------------------
def _predictor_order(df: pd.DataFrame) -> list[str]:
    meta = df.drop_duplicates("predictor")[["predictor", "family"]]
    rank = {f: i for i, f in enumerate(T.FAMILY_ORDER)}
    meta = meta.assign(r=meta["family"].map(rank).fillna(len(rank)))
    return meta.sort_values(["r", "predictor"])["predictor"].tolist()


def submit_galleries(df: pd.DataFrame, out: Path, renderer: F.Renderer) -> list[tuple[str, Any]]:
    """Each suite's gallery, drawn by the renderer in the report's figure style: (suite, future)."""
    pending = []
    for suite in suite_order(df):
        fn = gallery_hook(suite)
        if fn is None:
            continue
        gdir = out / "figures" / "gallery" / F.slug(suite)
        gdir.mkdir(parents=True, exist_ok=True)
        pending.append((suite, renderer.submit(F.in_style, fn, df[df["suite"] == suite].copy(), gdir)))
    return pending


def gallery_items(pending: list[tuple[str, Any]]) -> list[dict]:
    """The drawn galleries' files and captions; a broken gallery must not lose the rest of the report."""
    items = []
    for suite, future in pending:
        try:
            got = future.result() or []
        except Exception as exc:
            warnings.warn(f"gallery of suite {suite!r} failed: {type(exc).__name__}: {exc}")
            items.append({"suite": suite, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for g in got:
            path, caption = (g if isinstance(g, (tuple, list)) else (g, ""))
            items.append({"suite": suite, "path": Path(path), "caption": str(caption)})
    return items


def suite_order(df: pd.DataFrame) -> list[str]:
    """Suites in the order they first appear in the results (the order of the run's config)."""
    return pd.unique(df["suite"]).tolist()


@dataclass
class Section:
    """A report section: figures, plain-text paragraphs and notes, and optional trusted HTML.

    Suites contribute sections through :func:`register_section` or a ``report_sections`` method;
    the core adds its own (verdicts, curves, triad map, leaderboards, families, gallery, provenance).
    """

    id: str
    title: str
    figures: list = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    html: str = ""
    markdown: str = ""
    suite: str = ""
    css_class: str = ""


@dataclass
class SectionContext:
    """What a section provider may use: where to write, the suite's metric and its colours."""

    out: Path
    fig_dir: Path
    tab_dir: Path
    metric: str
    styler: Any
    all_results: pd.DataFrame
    #: ``submit(figure_fn, *args)``: a figure drawn in the background; put what it returns in
    #: ``Section.figures`` (the report waits for it). Drawn at once by default.
    submit: Callable = F.draw_now


#: suite name -> ``fn(results: DataFrame, ctx: SectionContext) -> list[Section]``
SECTIONS: dict[str, Callable[[pd.DataFrame, SectionContext], list]] = {}
#: built-in section providers, imported only when a report holds that suite
BUILTIN_SECTIONS = {"linear-regression": "benchmark.suites.linear_regression_report:report_sections",
                    "arc": "benchmark.suites.arc_report:report_sections"}


def register_section(suite: str) -> Callable:
    """Decorator: ``@register_section("my-suite")`` adds a function returning report sections.

    Example
    -------
    >>> @register_section("my-suite")
    ... def my_sections(results, ctx):
    ...     return [Section("my-suite-extra", "My analysis", paragraphs=["..."])]
    >>> "my-suite" in SECTIONS
    True
    """

    def deco(fn: Callable) -> Callable:
        SECTIONS[suite] = fn
        return fn

    return deco


def section_hook(suite: str) -> Callable | None:
    """The registered section provider of a suite, else a built-in one, else the suite class's
    ``report_sections`` (a staticmethod or classmethod), else None."""
    return suite_hook(suite, SECTIONS, BUILTIN_SECTIONS, "report_sections")


def suite_sections(df: pd.DataFrame, out: Path, metrics: dict, stylers: dict,
                   submit: Callable = F.draw_now) -> list[Section]:
    """Every suite's contributed sections, in the run's suite order; a provider that raises is
    reported as a note and does not stop the report. Figures they ``submit`` may still be being
    drawn: :func:`drawn_sections` waits for them."""
    found: list[Section] = []
    for suite in suite_order(df):
        fn = section_hook(suite)
        if fn is None:
            continue
        ctx = SectionContext(out, out / "figures", out / "tables", metrics[suite], stylers[suite], df, submit)
        try:
            got = fn(df[df["suite"] == suite].copy(), ctx) or []
        except Exception as exc:
            got = [_failed_section(suite, exc)]
        for sec in got:
            sec.suite = sec.suite or suite
            if any(x.id == sec.id for x in found):
                sec.id = f"{sec.id}-{F.slug(suite)}"
            found.append(sec)
    return drawn_sections(found) if submit is F.draw_now else found


def _failed_section(suite: str, exc: Exception) -> Section:
    """What stands in for a suite's sections when its provider (or one of its figures) raised."""
    warnings.warn(f"report sections of suite {suite!r} failed: {type(exc).__name__}: {exc}")
    return Section(f"{F.slug(suite)}-failed", f"{suite}: analysis", suite=suite,
                   notes=[f"the suite's report section failed ({type(exc).__name__}: {exc})"])


def drawn_sections(sections: list[Section]) -> list[Section]:
    """The sections with their submitted figures drawn (a figure that raised fails its section)."""
    out = []
    for sec in sections:
        try:
            figs = [f.result() if hasattr(f, "result") else f for f in sec.figures]
        except Exception as exc:
            out.append(_failed_section(sec.suite, exc))
            continue
        sec.figures = [f for f in figs if f]
        out.append(sec)
    return out


#: what a drawing process imports while this one reads the runs (galleries load suites by name)
WARM_UP = ("benchmark.registry:list_suites",)


def build_report(runs: Sequence[Path], out: Path) -> Path:
    """Write report.html, summary.md, figures/ and tables/ under ``out``; return report.html's path."""
    t0 = time.perf_counter()
    runs = [Path(r) for r in runs]
    out = Path(out)
    with F.Renderer() as renderer:  # figures are drawn in the background while the tables are computed
        renderer.start(*WARM_UP)
        df, manifests = T.load_runs(runs)
        fig_dir, tab_dir = _clean_dirs(out)
        renderer.directions.update({x: T.higher_is_better(x) for x in suite_order(df)})
        galleries = submit_galleries(df, out, renderer)
        metrics = df.groupby("suite")["metric"].agg(lambda s: next((m for m in s if m), "score")).to_dict()
        # colours are fixed per suite: few enough predictors there for each to get its own
        stylers = {x: F.Styler(_predictor_order(df.loc[df["suite"] == x, ["predictor", "family"]]))
                   for x in suite_order(df)}

        curves = T.curves(df)
        curves.to_csv(tab_dir / "curves.csv", index=False)
        pending = {"score_vs_shots": _submit_curves(df, curves, metrics, stylers, fig_dir, renderer)}
        na = T.not_applicable(df, manifests)
        lb = T.leaderboard(df, manifests, na)
        lb.to_csv(tab_dir / "leaderboard.csv", index=False)
        fam = T.family_summary(lb)
        fam.to_csv(tab_dir / "family_summary.csv", index=False)
        gains = T.shot_gain(df, "novel")
        gains.to_csv(tab_dir / "novel_gain.csv", index=False)
        points = T.triad_points(df, gains)
        points.to_csv(tab_dir / "triad_points.csv", index=False)
        pending["triad_map"] = [renderer.submit(F.triad_map, points, suite, stylers[suite], fig_dir)
                                for suite in suite_order(df) if suite in set(points["suite"])]
        rows = answer_rows(df, lb, gains)
        rows_frame(rows).to_csv(tab_dir / "answer.csv", index=False)
        contributed = suite_sections(df, out, metrics, stylers, renderer.submit)
        verdict = verdicts(df, lb, gains)
        if len(verdict) and "suite" in verdict:  # suites in the order the runs list them
            rank = {x: i for i, x in enumerate(suite_order(df))}
            verdict = verdict.sort_values("suite", key=lambda c: c.map(rank), kind="stable")
            verdict = _beyond_from_answer(verdict, rows)
        verdict.to_csv(tab_dir / "verdict.csv", index=False)
        renderer.finish()
        figs = {k: [f for f in (p.result() for p in v) if f] for k, v in pending.items()}
        contributed = drawn_sections(contributed)
        gallery = gallery_items(galleries)
    elapsed = time.perf_counter() - t0

    sections = core_sections(df, manifests, lb, fam, verdict, figs, contributed, gallery, na, out)
    view = answer_view(rows, metrics)
    page = render_html(df, manifests, view, sections, out, elapsed)
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    (out / "summary.md").write_text(render_markdown(manifests, view, sections, lb, figs, contributed, out),
                                    encoding="utf-8")
    return path


def _clean_dirs(out: Path) -> tuple[Path, Path]:
    """figures/ and tables/ under ``out``, without the figures and tables of an older report."""
    fig_dir, tab_dir = out / "figures", out / "tables"
    for d in (fig_dir, tab_dir):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*"):
            if old.is_file() and old.suffix in (".png", ".svg", ".csv"):
                old.unlink()
    return fig_dir, tab_dir


def _submit_curves(df: pd.DataFrame, curves: pd.DataFrame, metrics: dict, stylers: dict, fig_dir: Path,
                   renderer: F.Renderer) -> list:
    """The score-vs-shots figures, one per suite setting, sent to the renderer."""
    pending = []
    for suite in suite_order(df):
        for setting in T.setting_order(df.loc[df["suite"] == suite, "setting"]):
            part = curves[(curves["suite"] == suite) & (curves["setting"] == setting)]
            pending.append(renderer.submit(F.score_vs_shots, part, suite, setting, metrics[suite],
                                           stylers[suite], fig_dir))
    return pending


def _beyond_from_answer(verdict: pd.DataFrame, rows: list) -> pd.DataFrame:
    """The verdict's "learns beyond templates" column, from the answer's Holm-corrected rule."""
    word = {"R5": "no", "R6": "no: indistinguishable from template selection", "R8": "yes", "R9": "yes",
            "R10": "yes", "R2": "no: not even above the floor", "R4": "not tested: no template scored"}
    by = {(r.suite, r.setting, r.predictor): r for r in rows}
    out = verdict.copy()
    for i, v in out.iterrows():
        r = by.get((v["suite"], v["setting"], v["predictor"]))
        if r is not None:
            out.at[i, "beyond_templates"] = word.get(r.rule, "cannot decide") + f" (answer rule {r.rule})"
    return out


# -- rendering --------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1360px;margin:0 auto;
padding:.8em 1.2em;color:#222;line-height:1.4}
h1{margin:.1em 0 .1em;font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
header .meta{margin:.1em 0 .3em;color:#555;font-size:.9em}
nav{font-size:.9em}nav a{margin-right:1em}
table{border-collapse:collapse;font-size:.86em;margin:.5em 0 1.2em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
tr.na td{color:#777;font-style:italic}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;max-width:1000px}
.verdict p{margin:.35em 0}.note{color:#7a4b00}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
details{margin:.4em 0}summary{cursor:pointer}
#answer h2{margin-top:.4em;margin-bottom:.2em}#answer h3{margin:.7em 0 .2em;font-size:1.05em}
#answer .unit{font-weight:normal;color:#666;font-size:.85em}
.lede{margin:.2em 0 .4em;font-size:.92em;max-width:1300px}
.answer-table{font-size:12px;width:100%;table-layout:auto;margin:.2em 0 .6em}
.answer-table th{font-size:11.5px;vertical-align:bottom;text-align:left;padding:.2em .35em}
.answer-table td{padding:.2em .35em;text-align:left;white-space:normal}
.answer-table td div.sub{color:#555;font-size:10.5px;white-space:normal}
.answer-table td{max-width:9em}
.answer-table td.yes{background:#e3f4e1}.answer-table td.no{background:#fbe1df}
.answer-table td.open{background:#f1f1f1}.answer-table td.na{color:#888}
.answer-table td.few{background:repeating-linear-gradient(135deg,#f6f6f6 0 6px,#ececec 6px 12px);color:#555}
.answer-table td.concl{min-width:11em;max-width:14em;white-space:normal;font-size:12px}
.answer-table tr.first td{border-top:2px solid #bbb}
.answer-table th{max-width:8em}
.answer-table td.concl.strong{font-weight:600;background:#fff4d6}
.answer-table td.concl.tmpl{background:#ece6f6}.answer-table td.concl.warn{background:#fbe1df}
.answer-table td.concl.weak{color:#444}
.answer-table td.reach{min-width:10.5em}
.answer-table .rule{color:#888;font-size:10px;font-weight:normal}
.legend{font-size:.8em;color:#555;max-width:1300px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _ci(mean: float, lo: float, hi: float) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def _int(x: Any) -> str:
    return "" if pd.isna(x) else str(int(x))


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _rel(path: Path, out: Path) -> str:
    try:
        return Path(path).resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_uri()


def _figure_view(f: F.Figure, out: Path) -> dict:
    return {"id": f.png.stem, "title": f.title, "caption": f.caption, "src": _img(f.png),
            "csv": _rel(f.csv, out), "csv_name": f.csv.name, "svg": _rel(f.svg, out), "png": _rel(f.png, out)}


def _table(df: pd.DataFrame, left: Sequence[str] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{_e(c)}</th>' for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cls = ' class="na"' if any(str(v).startswith("n/a") for v in r.values) else ""
        body.append(f"<tr{cls}>" + "".join(f'<td class="{"l" if c in left else ""}">{_e(r[c])}</td>'
                                         for c in df.columns) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _md_table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(x).replace("|", "/") for x in r.values) + " |")
    return "\n".join(lines)


def _verdict_cell(r: pd.Series, key: str, better: str, worse: str) -> str:
    if f"{key}_decision" not in r or pd.isna(r.get(f"{key}_decision")):
        return "no shared episodes" if key != "gain" else "one shot count only"
    d, m, lo, hi = r[f"{key}_decision"], r[f"{key}_diff" if key != "gain" else "gain"], r[f"{key}_lo"], r[f"{key}_hi"]
    n = r.get(f"{key}_n")
    if d == 0 and lo == 0 and hi == 0:
        return "no change: every paired difference is 0"
    if pd.notna(n) and n < MIN_UNITS:
        return f"too few (n={int(n)}): {fmt(m)} [{fmt(lo)}, {fmt(hi)}]"
    word = better if d > 0 else worse if d < 0 else "cannot decide"
    return f"{word}: {fmt(m)} [{fmt(lo)}, {fmt(hi)}]" + (f" n={int(n)}" if pd.notna(n) else "")


def verdict_view(g: pd.DataFrame) -> pd.DataFrame:
    """One row per predictor: the verdict's decisions with their 95% intervals (positive = better)."""
    rows = []
    for _, r in g.iterrows():
        vt = r.get("vs_template") if isinstance(r.get("vs_template"), str) else None
        vr = r.get("vs_reference") if isinstance(r.get("vs_reference"), str) else None
        rows.append({
            "predictor": r["predictor"], "family": r["family"],
            "weights at runtime": "updated" if r["updates_weights"] in (True, "True") else "frozen",
            "improves with demonstrations (novel; gain fewest -> most shots)": _verdict_cell(r, "gain", "yes", "gets worse"),
            "vs best template (novel)": "none scored" if not vt else f"{vt}: " + (
                "(itself)" if vt == r["predictor"] else _verdict_cell(r, "vs_template", "better", "worse")),
            "learns beyond templates": r.get("beyond_templates", ""),
            "vs reference learner": "none scored" if not vr else f"{vr}: " + (
                "(itself)" if vr == r["predictor"] else _verdict_cell(r, "vs_reference", "better", "worse")),
        })
    return pd.DataFrame(rows)


def leaderboard_view(g: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard rows as displayed: intervals formatted, n/a with its reason."""
    rows = []
    for _, r in g.iterrows():
        if r["status"] == "not applicable":
            rows.append({"predictor": r["predictor"], "family": r.get("family", ""),
                         "updates weights": "yes" if r.get("updates_weights") is True else "no",
                         "shots averaged": "", "mean over those shots [95% CI]": f"n/a: {r['reason']}",
                         "n (units)": "", "median": "", "at max shot [95% CI]": "n/a", "n": "",
                         "errors": "", "skipped": ""})
            continue
        ms = "" if pd.isna(r["max_shot"]) else f" (k={int(r['max_shot'])})"
        units = _int(r["n_shots_ge1"])
        if pd.notna(r.get("units_shots_ge1")) and r.get("unit") == "tasks":
            units += f" ({_int(r['units_shots_ge1'])} tasks)"
        heavy = bool(r.get("heavy_tailed")) if pd.notna(r.get("heavy_tailed")) else False
        rows.append({"predictor": r["predictor"], "family": r["family"],
                     "updates weights": "yes" if r["updates_weights"] is True else "no",
                     "shots averaged": r.get("shots_used", ""),
                     "mean over those shots [95% CI]": _ci(r["mean_shots_ge1"], r["lo_shots_ge1"], r["hi_shots_ge1"]),
                     "n (units)": units,
                     "median": (fmt(r["median_shots_ge1"]) + (" (heavy tail)" if heavy else ""))
                     if pd.notna(r.get("median_shots_ge1")) else "",
                     "at max shot [95% CI]": _ci(r["mean_max_shot"], r["lo_max_shot"], r["hi_max_shot"]) + ms,
                     "n": _int(r["n_max_shot"]), "errors": _int(r["errors"]), "skipped": _int(r["skipped"])})
    return pd.DataFrame(rows)


# -- the answer -------------------------------------------------------------------------------
ANSWER_HEADERS = [
    ("setting", "l", "suite setting (a pool size, a task kind ...)"),
    ("system", "l", "the in-context or fine-tuned predictor"),
    ("conclusion", "l", "the first rule of docs/report.md that applies (rule id at the end)"),
    ("Leg 1: novel score", "", "its mean on novel tasks over its shots >= 1 [95% CI], n independent units"),
    ("Leg 1: vs floor", "", "paired difference with the best lookup/zero predictor on novel tasks; + = better"),
    ("vs reference learner", "", "paired difference with the reference learner (ridge, or the best reference); + = better"),
    ("lookup? memorization gap", "", "memorized minus novel (+ = better on memorized episodes; "
                                     "large and not above the floor = lookup)"),
    ("vs best template: novel", "", "paired difference with the best template-family predictor on novel tasks; + = better"),
    ("vs best template: out of the pool's reach", "", "paired difference with the best template on splits or "
                                                      "tasks the templates cannot reach (ood, novel-orthogonal, "
                                                      "suite-marked); + = better"),
    ("closer to", "", "Raventós-style: per episode, distance to the best template minus distance to the reference "
                      "learner (+ = closer to the learner)"),
    ("improves with demos", "", "paired gain from the fewest to the most shots on novel tasks "
                               "(template selectors improve too: this alone is not learning)"),
    ("Leg 3: weights", "l", "declared by the predictor; verified when its parameters were hashed "
                            "before and after predict"),
]


def _f2(x: float) -> str:
    """Two significant figures: the answer's cells are narrow."""
    return "n/a" if pd.isna(x) else f"{x:.2g}"


def _signed(x: float) -> str:
    return "n/a" if pd.isna(x) else ("+" if x > 0 else "") + fmt(x)


def _claim_cell(c, label_better: str = "", label_worse: str = "", show_other: bool = True) -> dict:
    """A claim as a table cell: decision and effect, [CI], n and what it was compared with,
    coloured by the decision."""
    if c is None:
        return {"parts": [{"text": "—"}], "cls": "na", "title": "", "md": "—"}
    if not c.measured:
        return {"parts": [{"text": c.note or "not measured", "sub": True}], "cls": "na", "title": "", "md": c.note or "—"}
    unit = " tasks" if c.unit == "tasks" else ""
    ci = f"[{_f2(c.lo)}, {_f2(c.hi)}]"
    sub = f"n={c.n}{unit}" + (f" · {c.other}" if show_other and c.other else "")
    lead = ""
    if c.key.startswith("unreachable"):
        lead = f"{c.split}: "
    title = (f"p={c.p:.2g}, Holm-adjusted p={c.p_holm:.2g}" if np.isfinite(c.p_holm) else "not tested")
    if not c.tested:
        from benchmark.answer import too_few

        word, cls = ("too few", "few") if c.n < MIN_UNITS else ("n.s.", "open")
        title = too_few(c) if c.n < MIN_UNITS else title
    elif c.decision > 0:
        word, cls = label_better or "better", "yes"
    elif c.decision < 0:
        word, cls = label_worse or "worse", "no"
    else:
        word, cls = "n.s.", "open"
        if np.isfinite(c.more_needed):
            title += f"; needs about {int(c.more_needed)} more {c.unit}"
    parts = [{"text": f"{lead}{word} {_signed2(c.mean)}"}, {"text": ci}, {"text": sub, "sub": True}]
    return {"parts": parts, "cls": cls, "title": title, "md": f"{lead}{word} {_signed2(c.mean)} {ci} {sub}"}


def _short_shots(label: str) -> str:
    """``1,2,4,8,12,16`` -> ``1..16 (6)``: the answer's cells are narrow."""
    parts = [p for p in str(label).split(",") if p]
    return f"{parts[0]}..{parts[-1]}" if len(parts) > 3 else str(label)


def _signed2(x: float) -> str:
    return "n/a" if pd.isna(x) else ("+" if x > 0 else "") + _f2(x)


def _leg3_short(r) -> str:
    if r.leg3_status == "verified":
        return "verified: " + r.leg3.split("(", 1)[-1].rstrip(")")
    if r.leg3_status == "changed":
        return r.leg3.split("but ", 1)[-1]
    return "declared only"


def _multi(cells: list) -> dict:
    if not cells:
        return {"parts": [{"text": "no such split scored", "sub": True}], "cls": "na reach", "title": "",
                "md": "no such split scored"}
    views, seen = [], set()
    for c in cells:  # one "no template scored" note, not one per split
        v = _claim_cell(c)
        if not c.measured and v["md"] in seen:
            continue
        seen.add(v["md"])
        views.append(v)
    order = {"no": 0, "few": 1, "open": 2, "na": 3, "yes": 4}
    return {"parts": [p for v in views for p in v["parts"]],
            "cls": min((v["cls"] for v in views), key=order.get) + " reach",
            "title": "; ".join(v["title"] for v in views if v["title"]), "md": "; ".join(v["md"] for v in views)}


def answer_view(rows: list, metrics: dict) -> dict:
    """What the answer templates show: one table per suite, one row per setting and system."""
    n_tests = getattr(rows[0], "n_tests", 0) if rows else 0
    tables: dict[str, dict] = {}
    for r in rows:
        t = tables.setdefault(r.suite, {"suite": r.suite, "metric": T.metric_label(r.suite, metrics.get(r.suite, "score")),
                                        "rows": []})
        nv = r.novel
        novel = {"parts": [{"text": f"{_f2(nv.mean)}"}, {"text": f"[{_f2(nv.lo)}, {_f2(nv.hi)}]"},
                           {"text": f"n={nv.n}{' tasks' if nv.unit == 'tasks' else ''} · k {_short_shots(nv.shots)}", "sub": True}],
                 "cls": "few" if nv.n < MIN_UNITS else "", "title": "", "md": f"{fmt(nv.mean)} [{fmt(nv.lo)}, {fmt(nv.hi)}] n={nv.n}"}
        dist = _claim_cell(r.cells["distance"], "learner", "template", show_other=False)
        leg3_cls = {"verified": "yes", "changed": "no"}.get(r.leg3_status, "")
        cells = [novel, _claim_cell(r.cells["floor"]), _claim_cell(r.cells["reference"]),
                 _claim_cell(r.cells["gap"], "better on memorized", "better on novel", show_other=False),
                 _claim_cell(r.cells["template"]), _multi(r.unreachable), dist,
                 _claim_cell(r.cells["gain"], "yes", "gets worse", show_other=False),
                 {"parts": [{"text": "updates weights" if r.updates_weights else "frozen"},
                            {"text": _leg3_short(r), "sub": True}], "cls": leg3_cls + " l", "title": r.leg3,
                  "md": r.leg3}]
        concl_cls = {"R8": "strong", "R9": "warn", "R10": "strong", "R5": "tmpl", "R6": "tmpl"}.get(r.rule, "weak")
        raw = r.setting or "(all)"
        same = bool(t["rows"]) and t["rows"][-1]["_setting"] == raw
        shown = raw.replace("=", "=\u200b")  # lets a long setting wrap after "="
        t["rows"].append({"setting": "" if same else shown, "_setting": raw, "predictor": r.predictor,
                          "family": f"{r.family}, {'updates weights' if r.updates_weights else 'frozen'}",
                          "cells": cells, "conclusion": r.conclusion, "rule": r.rule, "concl_cls": concl_cls})
    lede = (f"Per in-context or fine-tuned system: does it do well on novel tasks (leg 1), is it lookup or "
            f"template selection, does it learn at runtime with frozen weights (leg 3)? Cells: paired "
            f"difference (+ = better for the system) [95% CI], n independent units. Decided only with "
            f"n ≥ {MIN_UNITS} and Holm-adjusted p < {ALPHA} over the {n_tests} claims tested.")
    groups = [("learn at runtime with frozen weights (R10)", {"R10"}),
              ("learn beyond templates by updating weights (R8)", {"R8"}),
              ("template selection or no better (R5, R6)", {"R5", "R6"}),
              ("cannot decide (R0, R1, R3, R7)", {"R0", "R1", "R3", "R7"}),
              ("above the floor, no template scored (R4)", {"R4"}),
              ("below the floor or weights changed (R2, R9)", {"R2", "R9"})]
    counts = [(label, sum(r.rule in rules for r in rows)) for label, rules in groups]
    glance = "; ".join(f"{n} {label}" for label, n in counts if n)
    if rows:
        lede += f" At a glance, of {len(rows)} rows: {glance}."
    legend = ("Colours: green = decided better (or verified), red = decided worse, grey = not significant "
              "after Holm (n.s.: undecided), "
              f"hatched = too few units (< {MIN_UNITS}). Hover a cell for its p-values and the units a "
              "decision would need. Full numbers: tables/answer.csv; the rules: docs/report.md.")
    headers = [{"text": h, "cls": c, "title": t} for h, c, t in ANSWER_HEADERS]
    return {"tables": list(tables.values()), "headers": headers, "lede": lede, "legend": legend,
            "rules": [{"id": k, "text": v} for k, v in RULES],
            "n_tests": n_tests, "empty": "No in-context or fine-tuned predictor was scored on novel tasks, "
                                         "so there is nothing to answer."}


# -- the page ---------------------------------------------------------------------------------
def core_sections(df, manifests, lb, fam, verdict, figs, contributed, gallery, na, out: Path) -> list[Section]:
    """The generic sections, with the suites' own sections after the score-vs-shots curves."""
    secs: list[Section] = []
    # per-setting verdicts
    parts, md = [], []
    if verdict.empty:
        parts.append("<p>No predictor was scored on novel tasks, so there is nothing to conclude.</p>")
    for (suite, setting), g in verdict.groupby(["suite", "setting"], sort=False):
        head = f"{suite}{' (' + setting + ')' if setting else ''}"
        view = verdict_view(g)
        parts.append(f"<h3>{_e(head)}</h3>" + _table(view, left=tuple(view.columns)))
        sentences = []
        for t in g["text"]:
            t = _e(t)
            while "**" in t:
                t = t.replace("**", "<b>", 1).replace("**", "</b>", 1)
            sentences.append(f"<p>{t}</p>")
        parts.append("<details><summary>the same in sentences, with the numbers</summary>"
                     + "".join(sentences) + "</details>")
        md += [f"### {head}", ""] + [f"- {t}" for t in g["text"]] + [""]
    if len(na):
        parts.append("<p>Not applicable (never scored, shown as n/a, not as zero): " + "; ".join(
            f"{_e(r.predictor)} on {_e(r.suite)}{' (' + _e(r.setting) + ')' if r.setting else ''}: {_e(r.reason)}"
            for r in na.itertuples()) + ".</p>")
    secs.append(Section("verdict", "Verdict per setting", paragraphs=[
        "Every predictor, each setting on its own: whether it improves with demonstrations (template "
        "selectors do too), how it compares with the best template and the reference learner. An effect "
        f"is claimed where its 95% interval excludes zero and rests on at least {MIN_UNITS} independent "
        "units; these per-setting sentences are not corrected for multiplicity (the answer above is)."],
        html="".join(parts), markdown="\n".join(md), css_class="verdict"))
    secs.append(Section("curves", "Score vs demonstrations",
                        figures=figs["score_vs_shots"],
                        paragraphs=[] if figs["score_vs_shots"] else ["No suite was scored at more than one shot count."]))
    secs += contributed
    secs.append(Section("triad", "Triad map", figures=figs["triad_map"], paragraphs=[] if figs["triad_map"] else [
        "A triad map needs both memorized and novel episodes; no suite has both."]))
    # leaderboards
    parts, md = [], []
    for (suite, setting), g in lb.groupby(["suite", "setting"], sort=False):
        head = f"{suite}{' (' + setting + ')' if setting else ''}"
        parts.append(f"<h3>{_e(head)} — {_e(T.metric_label(suite, df.loc[df['suite'] == suite, 'metric'].iloc[0]))}</h3>")
        by_split = dict(list(g.groupby("split", sort=False)))
        for split in sorted(by_split, key=lambda sp: (sp != "novel", T.SPLIT_ORDER.index(sp)
                                                      if sp in T.SPLIT_ORDER else 99)):
            view = leaderboard_view(by_split[split])
            table = _table(view, left=("predictor", "family", "mean over those shots [95% CI]"))
            if split == "novel":
                parts.append(f"<h4>{_e(split)}</h4>" + table)
                md += [f"### {head}", "", _md_table(view), ""]
            else:
                parts.append(f"<details><summary><b>{_e(split)}</b></summary>{table}</details>")
    secs.append(Section("leaderboard", "Leaderboards", paragraphs=[
        "Per suite, setting and split. Means over shots use the shot counts every predictor of the "
        "table was scored at (the common grid, shown), so rows compare like with like; each episode is "
        "averaged over those shots first, and intervals resample episodes, or tasks where episodes share "
        "tasks (n units in brackets). Where a few large errors dominate the mean (heavy tail, e.g. OLS "
        "near shots = d), read the median beside it. Full table: tables/leaderboard.csv."],
        html="".join(parts), markdown="\n".join(md)))
    if fam.empty:
        fam_html = "<p>No scored predictors.</p>"
    else:
        view = fam.assign(**{"mean [95% CI]": [_ci(m, lo, hi) for m, lo, hi in zip(fam["mean"], fam["lo"], fam["hi"])],
                             "episodes": fam["n"].map(_int)})
        fam_html = _table(view[["suite", "setting", "split", "family", "predictors", "best", "mean [95% CI]",
                                "episodes"]], left=("suite", "setting", "split", "family", "best"))
    secs.append(Section("families", "Families", paragraphs=[
        "The best predictor of each family per split (mean over the common shot grid). "
        "Full table: tables/family_summary.csv."], html=fam_html))
    if gallery:
        gp = []
        for g in gallery:
            if "error" in g:
                gp.append(f'<p class="note">{_e(g["suite"])}: the gallery failed ({_e(g["error"])}).</p>')
            elif g["path"].suffix.lower() == ".png" and g["path"].exists():
                gp.append(f'<figure><img alt="{_e(g["caption"] or g["path"].name)}" src="{_img(g["path"])}">'
                          f"<figcaption>{_e(g['suite'])}: {_e(g['caption'])}</figcaption></figure>")
            else:
                gp.append(f'<p><a href="{_rel(g["path"], out)}">{_e(g["path"].name)}</a> {_e(g["caption"])}</p>')
        secs.append(Section("gallery", "Gallery", html="".join(gp)))
    secs.append(Section("provenance", "Provenance", html=provenance_html(manifests, df)))
    return secs


def _env():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
                       autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def render_html(df, manifests, view: dict, sections: list[Section], out: Path, elapsed: float) -> str:
    """The whole page from templates/report.html.j2; images are embedded, so it opens offline."""
    from markupsafe import Markup

    n_ok = int((df["status"] == "ok").sum())
    meta = (f"{len(manifests)} run(s); suite(s): {', '.join(suite_order(df))}; {n_ok} scored episodes, "
            f"{int((df['status'] == 'error').sum())} errors, {int((df['status'] == 'skipped').sum())} skipped "
            f"rows. Built in {elapsed:.1f} s.")
    secs = [{"id": s.id, "title": s.title, "paragraphs": s.paragraphs, "notes": s.notes,
             "figures": [_figure_view(f, out) for f in s.figures], "html": Markup(s.html),
             "css_class": s.css_class} for s in sections]
    nav = [{"id": "answer", "title": "The answer"}] + [{"id": s.id, "title": s.title} for s in sections]
    return _env().get_template("report.html.j2").render(css=Markup(CSS), meta=meta, nav=nav, answer=view,
                                                         sections=secs)


def render_markdown(manifests, view: dict, sections: list[Section], lb, figs, contributed, out: Path) -> str:
    """summary.md from templates/summary.md.j2: the answer first, then verdicts, the novel-task
    leaderboards and links to the figures."""
    links = []
    for f in figs["score_vs_shots"] + [f for s in contributed for f in s.figures] + figs["triad_map"]:
        links.append(f"- [{f.title}]({_rel(f.png, out)}) (data: [{f.csv.name}]({_rel(f.csv, out)}))")
    md_secs = [{"title": s.title, "markdown": s.markdown} for s in sections if s.markdown]
    md_secs.append({"title": "Figures", "markdown": "\n".join(links)})
    from jinja2 import Environment, FileSystemLoader

    env = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")), autoescape=False,
                      keep_trailing_newline=True)
    return env.get_template("summary.md.j2").render(
        runs=", ".join(m["run"] for m in manifests),
        commits=", ".join(sorted({str(m.get("commit", "unknown")) for m in manifests})),
        answer=view, sections=md_secs)


def fit_choices_html(fitted: Sequence[dict]) -> str:
    """What predictors chose at fit (dtype, threads, tuned steps), flagging a setting that mixed choices."""
    if not fitted:
        return ""
    t = pd.DataFrame([{"predictor": f["predictor"], "suite_config": f["suite_config"], "seed": f["seed"],
                       "chosen": json.dumps(f["chosen"], sort_keys=True), "cells": f.get("cells", ""),
                       "mixed": "MIXED" if f.get("mixed") else ""} for f in fitted])
    mixed = sorted({f["predictor"] for f in fitted if f.get("mixed")})
    head = ("<h4>Chosen at fit: MIXED for " + _e(", ".join(mixed)) + "</h4><p>These predictors' cells "
            "of one setting were run with different choices (e.g. dtype after a resume on another "
            "host); their results are not one configuration's.</p>") if mixed else "<h4>Chosen at fit</h4>"
    return head + _table(t, left=("predictor", "suite_config", "chosen"))


def provenance_html(manifests: Sequence[dict], df: pd.DataFrame) -> str:
    """Where every number came from: runs, configs, seeds, versions, machine, timings, audits."""
    parts = []
    for m in manifests:
        run = m["run"]
        sub = df[df["run"] == run]
        parts.append(f"<h3>run {_e(run)}</h3>")
        if len(m) == 1:
            parts.append("<p>No manifest.json in this run directory.</p>")
            continue
        info = {"created": m.get("created", ""), "commit": m.get("commit", ""),
                "executor": m.get("executor", ""), "seeds": m.get("seeds", ""),
                "wall seconds (last invocation)": m.get("wall_seconds_this_invocation", ""),
                "cells": json.dumps(m.get("cells", {})), "rows": json.dumps(m.get("rows", {})),
                "rows kept after merging": int(len(sub)),
                "machine": ", ".join(f"{k}={v}" for k, v in (m.get("machine") or {}).items()),
                "versions": ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())}
        parts.append(_table(pd.DataFrame({"field": list(info), "value": [str(v) for v in info.values()]}),
                            left=("field", "value")))
        tim = m.get("timings") or {}
        if tim:
            t = pd.DataFrame([{"predictor": k, **v} for k, v in tim.items()])
            parts.append("<h4>Wall time per predictor (seconds)</h4>" + _table(t, left=("predictor",)))
        parts.append(fit_choices_html(m.get("fitted_params") or []))
        aud = m.get("contamination_audit") or []
        if aud:
            a = pd.DataFrame(aud)
            leaks = int(pd.to_numeric(a.get("leaks", 0), errors="coerce").fillna(0).sum())
            verdict = "no leaks found" if leaks == 0 else f"{leaks} LEAK(S) FOUND"
            parts.append(f"<h4>Contamination audit: {verdict}</h4>" + _table(a, left=("suite", "suite_config")))
        else:
            parts.append("<h4>Contamination audit</h4><p>not recorded in this run.</p>")
        na = m.get("not_applicable") or []
        if na:
            parts.append("<h4>Not applicable</h4>" + _table(pd.DataFrame(na), left=("suite", "suite_config",
                                                                                  "predictor", "reason")))
        failed = m.get("failed_cells") or []
        parts.append("<h4>Failed cells</h4>" + (_table(pd.DataFrame(failed)[[c for c in ("predictor", "label", "split", "shots", "seed", "error") if c in pd.DataFrame(failed)]],
                                                       left=("predictor", "label", "split", "error"))
                                                if failed else "<p>none</p>"))
        bad = m.get("error_rows") or {}  # episodes whose prediction failed (NaN/inf, raised, ...)
        parts.append("<h4>Failed episodes (status=error)</h4>" + (_table(pd.DataFrame(
            [{"predictor": k, **v} for k, v in bad.items()]), left=("predictor", "example"))
            if bad else "<p>none</p>"))
        parts.append("<details><summary>config</summary><pre>"
                     + _e(json.dumps(m.get("config", {}), indent=2, default=str)) + "</pre></details>")
    return "\n".join(parts)
