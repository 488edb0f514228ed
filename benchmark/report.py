"""Build the comparison report (report.html, summary.md, figures/, tables/) from run directories.

``build_report([run_a, run_b], out)`` merges the runs (cells present in both are counted once),
aggregates with bootstrap intervals (:mod:`benchmark.tables`), draws the figures
(:mod:`benchmark.figures`) and writes sentences computed from the numbers
(:mod:`benchmark.verdict`). Suites may contribute a gallery of examples through
:func:`register_gallery` or a ``gallery(results, out_dir)`` method on the suite class.
"""

from __future__ import annotations

import base64
import html
import json
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from benchmark import figures as F
from benchmark import tables as T
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
    if suite in GALLERIES:
        return GALLERIES[suite]
    if suite in BUILTIN_GALLERIES:
        import importlib

        mod, fn = BUILTIN_GALLERIES[suite].split(":")
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError):
            pass
    try:
        from benchmark.registry import suite_class

        fn = getattr(suite_class(suite), "gallery", None)
    except Exception:
        return None
    return fn if callable(fn) else None


# -- building ---------------------------------------------------------------------------------
def _predictor_order(df: pd.DataFrame) -> list[str]:
    meta = df.drop_duplicates("predictor")[["predictor", "family"]]
    rank = {f: i for i, f in enumerate(T.FAMILY_ORDER)}
    meta = meta.assign(r=meta["family"].map(rank).fillna(len(rank)))
    return meta.sort_values(["r", "predictor"])["predictor"].tolist()


def _steps_note(cards: pd.DataFrame) -> str:
    if cards.empty:
        return ("Training steps of the in-context checkpoints: no checkpoint cards found under "
                "data/checkpoints/linear-regression, so they are unknown.")
    parts = []
    for _, c in cards.sort_values("pool_size", key=lambda s: s.map(T.pool_value)).iterrows():
        wall = f", {float(c['wall_seconds']) / 60:.0f} min" if pd.notna(c["wall_seconds"]) else ""
        parts.append(f"M={c['pool_size']}: {c['steps']} steps{wall}")
    return ("Training of the in-context checkpoints: " + "; ".join(parts) + ". Short training makes "
            "models look ridge-like, so where the transition happens depends on these budgets.")


def _gallery(df: pd.DataFrame, out: Path) -> list[dict]:
    items = []
    for suite in suite_order(df):
        fn = gallery_hook(suite)
        if fn is None:
            continue
        gdir = out / "figures" / "gallery" / F.slug(suite)
        gdir.mkdir(parents=True, exist_ok=True)
        try:
            got = fn(df[df["suite"] == suite].copy(), gdir) or []
        except Exception as exc:  # a broken gallery must not lose the rest of the report
            warnings.warn(f"gallery of suite {suite!r} failed: {type(exc).__name__}: {exc}")
            items.append({"suite": suite, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for g in got:
            path, caption = (g if isinstance(g, (tuple, list)) else (g, ""))
            items.append({"suite": suite, "path": Path(path), "caption": str(caption)})
    return items


def suite_order(df: pd.DataFrame) -> list[str]:
    """Suites in the order they first appear in the results (the order of the run's config)."""
    return list(dict.fromkeys(df["suite"]))


def build_report(runs: Sequence[Path], out: Path) -> Path:
    """Write report.html, summary.md, figures/ and tables/ under ``out``; return report.html's path."""
    t0 = time.perf_counter()
    runs = [Path(r) for r in runs]
    out = Path(out)
    df, manifests = T.load_runs(runs)
    fig_dir, tab_dir = out / "figures", out / "tables"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tab_dir.mkdir(parents=True, exist_ok=True)
    for d in (fig_dir, tab_dir):  # a rebuilt report keeps no figure or table of an older one
        for old in d.glob("*"):
            if old.is_file() and old.suffix in (".png", ".svg", ".csv"):
                old.unlink()
    metrics = df.groupby("suite")["metric"].agg(lambda s: next((m for m in s if m), "score")).to_dict()
    # colours are fixed per suite: few enough predictors there for each to get its own
    stylers = {x: F.Styler(_predictor_order(df[df["suite"] == x])) for x in suite_order(df)}

    curves = T.curves(df)
    curves.to_csv(tab_dir / "curves.csv", index=False)
    lb = T.leaderboard(df, manifests)
    lb.to_csv(tab_dir / "leaderboard.csv", index=False)
    fam = T.family_summary(lb)
    fam.to_csv(tab_dir / "family_summary.csv", index=False)
    gains = T.shot_gain(df, "novel")
    gains.to_csv(tab_dir / "novel_gain.csv", index=False)
    points = T.triad_points(df, gains)
    points.to_csv(tab_dir / "triad_points.csv", index=False)

    figs: dict[str, list[F.Figure]] = {"score_vs_shots": [], "transition": [], "triad_map": []}
    for suite in suite_order(df):
        for setting in T.setting_order(df.loc[df["suite"] == suite, "setting"]):
            f = F.score_vs_shots(curves, suite, setting, metrics[suite], stylers[suite], fig_dir)
            if f:
                figs["score_vs_shots"].append(f)
    cards = T.checkpoint_cards("linear-regression")
    if len(cards):
        cards.to_csv(tab_dir / "checkpoints.csv", index=False)
    notes: list[str] = []
    for suite in suite_order(df):
        trans = T.transition(df, suite)
        if trans.empty:
            continue
        note = _steps_note(cards) if suite == "linear-regression" else ""
        f = F.transition(trans, suite, metrics[suite], stylers[suite], fig_dir, note)
        if f:
            figs["transition"].append(f)
        subject = "icl-transformer" if "icl-transformer" in set(df["predictor"]) else None
        dist = T.prediction_distance(df, suite, subject) if subject else pd.DataFrame()
        f = F.distance(dist, suite, fig_dir, note)
        if f:
            figs["transition"].append(f)
        elif subject is None:
            notes.append(f"{suite}: no icl-transformer results, so the distance-to-dMMSE/ridge "
                         "comparison is not drawn.")
        else:
            notes.append(f"{suite}: icl-transformer has no scored episodes shared with template-dmmse "
                         "or ridge, so the distance comparison is not drawn.")
    for suite in [x for x in suite_order(df) if x in set(points["suite"])]:
        f = F.triad_map(points, suite, stylers[suite], fig_dir)
        if f:
            figs["triad_map"].append(f)
    verdict = verdicts(df, lb, gains)
    if len(verdict) and "suite" in verdict:  # suites in the order the runs list them
        rank = {x: i for i, x in enumerate(suite_order(df))}
        verdict = verdict.sort_values("suite", key=lambda c: c.map(rank), kind="stable")
    verdict.to_csv(tab_dir / "verdict.csv", index=False)
    gallery = _gallery(df, out)
    na = T.not_applicable(df, manifests)
    elapsed = time.perf_counter() - t0

    page = render_html(df, manifests, lb, fam, verdict, figs, gallery, na, notes, out, elapsed)
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    (out / "summary.md").write_text(render_markdown(df, manifests, lb, verdict, figs, na, out),
                                    encoding="utf-8")
    return path


# -- rendering --------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1250px;margin:0 auto;
padding:1.5em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
nav a{margin-right:1em}
table{border-collapse:collapse;font-size:.86em;margin:.5em 0 1.2em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
tr.na td{color:#777;font-style:italic}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;max-width:1000px}
.verdict p{margin:.35em 0}.note{color:#7a4b00}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
details{margin:.4em 0}summary{cursor:pointer}
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


def _figure_html(f: F.Figure, out: Path) -> str:
    return (f'<figure id="{_e(f.png.stem)}"><img alt="{_e(f.title)}" src="{_img(f.png)}">'
            f"<figcaption><b>{_e(f.title)}.</b> {_e(f.caption)} "
            f'Data: <a href="{_rel(f.csv, out)}">{_e(f.csv.name)}</a> · '
            f'<a href="{_rel(f.svg, out)}">SVG</a> · <a href="{_rel(f.png, out)}">PNG</a></figcaption></figure>')


def _table(df: pd.DataFrame, left: Sequence[str] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{_e(c)}</th>' for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cls = ' class="na"' if any(str(v).startswith("n/a") for v in r.values) else ""
        body.append(f"<tr{cls}>" + "".join(f'<td class="{"l" if c in left else ""}">{_e(r[c])}</td>'
                                         for c in df.columns) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict_cell(r: pd.Series, key: str, better: str, worse: str) -> str:
    if f"{key}_decision" not in r or pd.isna(r.get(f"{key}_decision")):
        return "no shared episodes" if key != "gain" else "one shot count only"
    d, m, lo, hi = r[f"{key}_decision"], r[f"{key}_diff" if key != "gain" else "gain"], r[f"{key}_lo"], r[f"{key}_hi"]
    if d == 0 and lo == 0 and hi == 0:
        return "no change: every paired difference is 0"
    word = better if d > 0 else worse if d < 0 else "cannot decide"
    return f"{word}: {fmt(m)} [{fmt(lo)}, {fmt(hi)}]"


def verdict_view(g: pd.DataFrame) -> pd.DataFrame:
    """One row per predictor: the verdict's decisions with their 95% intervals (positive = better)."""
    rows = []
    for _, r in g.iterrows():
        vt = r.get("vs_template") if isinstance(r.get("vs_template"), str) else None
        vr = r.get("vs_reference") if isinstance(r.get("vs_reference"), str) else None
        rows.append({
            "predictor": r["predictor"], "family": r["family"],
            "weights at runtime": "updated" if r["updates_weights"] in (True, "True") else "frozen",
            "learns from demonstrations (novel; gain fewest -> most shots)": _verdict_cell(r, "gain", "yes", "gets worse"),
            "vs best template": "none scored" if not vt else f"{vt}: " + (
                "(itself)" if vt == r["predictor"] else _verdict_cell(r, "vs_template", "better", "worse")),
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
                         "mean over shots >= 1 [95% CI]": f"n/a: {r['reason']}", "episodes": "",
                         "at max shot [95% CI]": "n/a", "n": "", "errors": "", "skipped": ""})
            continue
        ms = "" if pd.isna(r["max_shot"]) else f" (k={int(r['max_shot'])})"
        rows.append({"predictor": r["predictor"], "family": r["family"],
                     "updates weights": "yes" if r["updates_weights"] is True else "no",
                     "mean over shots >= 1 [95% CI]": _ci(r["mean_shots_ge1"], r["lo_shots_ge1"], r["hi_shots_ge1"]),
                     "episodes": _int(r["n_shots_ge1"]),
                     "at max shot [95% CI]": _ci(r["mean_max_shot"], r["lo_max_shot"], r["hi_max_shot"]) + ms,
                     "n": _int(r["n_max_shot"]), "errors": _int(r["errors"]), "skipped": _int(r["skipped"])})
    return pd.DataFrame(rows)


def render_html(df, manifests, lb, fam, verdict, figs, gallery, na, notes, out: Path,
                elapsed: float) -> str:
    """The whole page; images are embedded, so the file opens offline on its own."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>triadbench report</title>"
             f"<style>{CSS}</style></head><body>"]
    suites = suite_order(df)
    n_ok = int((df["status"] == "ok").sum())
    parts.append(f"<h1>triadbench report</h1><p>{len(manifests)} run(s), suite(s): {_e(', '.join(suites))}; "
                 f"{n_ok} scored episodes, {int((df['status'] == 'error').sum())} errors, "
                 f"{int((df['status'] == 'skipped').sum())} skipped rows. Built in {elapsed:.1f} s.</p>")
    sections = [("verdict", "Verdict"), ("curves", "Score vs demonstrations")]
    if figs["transition"]:
        sections.append(("transition", "Pool-size transition"))
    sections += [("triad", "Triad map"), ("leaderboard", "Leaderboards"), ("families", "Families")]
    if gallery:
        sections.append(("gallery", "Gallery"))
    sections.append(("provenance", "Provenance"))
    parts.append("<nav>" + "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in sections) + "</nav>")

    # verdict
    parts.append('<section id="verdict" class="verdict"><h2>Verdict</h2>'
                 "<p>Each sentence is computed from the results: an effect is claimed only where its "
                 "95% bootstrap interval excludes zero; otherwise the data cannot decide.</p>")
    if verdict.empty:
        parts.append("<p>No predictor was scored on novel tasks, so there is nothing to conclude.</p>")
    for (suite, setting), g in verdict.groupby(["suite", "setting"], sort=False):
        parts.append(f"<h3>{_e(suite)}{' (' + _e(setting) + ')' if setting else ''}</h3>")
        parts.append(_table(verdict_view(g), left=tuple(verdict_view(g).columns)))
        sentences = []
        for t in g["text"]:
            t = _e(t)
            while "**" in t:
                t = t.replace("**", "<b>", 1).replace("**", "</b>", 1)
            sentences.append(f"<p>{t}</p>")
        parts.append("<details><summary>the same in sentences, with the numbers</summary>"
                     + "".join(sentences) + "</details>")
    if len(na):
        parts.append("<p>Not applicable (never scored, shown as n/a, not as zero): " + "; ".join(
            f"{_e(r.predictor)} on {_e(r.suite)}{' (' + _e(r.setting) + ')' if r.setting else ''}: {_e(r.reason)}"
            for r in na.itertuples()) + ".</p>")
    parts.append("</section>")

    def figure_section(key: str, anchor: str, title: str, empty: str, extra: Sequence[str] = ()) -> None:
        if not figs[key] and not empty:
            return
        parts.append(f'<section id="{anchor}"><h2>{title}</h2>')
        parts.extend([_figure_html(f, out) for f in figs[key]] or [f"<p>{empty}</p>"])
        parts.extend(extra if figs[key] else ())
        parts.append("</section>")

    figure_section("score_vs_shots", "curves", "Score vs demonstrations",
                   "No suite was scored at more than one shot count.")
    figure_section("transition", "transition", "Pool-size transition", "",
                   [f'<p class="note">{_e(n)}</p>' for n in notes])
    figure_section("triad_map", "triad", "Triad map",
                   "A triad map needs both memorized and novel episodes; no suite has both.")

    parts.append('<section id="leaderboard"><h2>Leaderboards</h2><p>Per suite, setting and split; '
                 "the mean over shots >= 1 averages each episode over its shot counts first, so the "
                 "interval resamples episodes. Full table: "
                 '<a href="tables/leaderboard.csv">tables/leaderboard.csv</a>.</p>')
    for (suite, setting), g in lb.groupby(["suite", "setting"], sort=False):
        parts.append(f"<h3>{_e(suite)}{' (' + _e(setting) + ')' if setting else ''} — "
                     f"{_e(T.metric_label(suite, df.loc[df['suite'] == suite, 'metric'].iloc[0]))}</h3>")
        by_split = dict(list(g.groupby("split", sort=False)))
        for split in sorted(by_split, key=lambda sp: (sp != "novel", T.SPLIT_ORDER.index(sp)
                                                      if sp in T.SPLIT_ORDER else 99)):
            table = _table(leaderboard_view(by_split[split]), left=("predictor", "family",
                                                                    "mean over shots >= 1 [95% CI]"))
            if split == "novel":
                parts.append(f"<h4>{_e(split)}</h4>" + table)
            else:
                parts.append(f"<details><summary><b>{_e(split)}</b></summary>{table}</details>")
    parts.append("</section>")

    parts.append('<section id="families"><h2>Families</h2><p>The best predictor of each family per split '
                 '(mean over shots >= 1). <a href="tables/family_summary.csv">tables/family_summary.csv</a></p>')
    if fam.empty:
        parts.append("<p>No scored predictors.</p>")
    else:
        view = fam.assign(**{"mean [95% CI]": [_ci(m, lo, hi) for m, lo, hi in zip(fam["mean"], fam["lo"], fam["hi"])],
                             "episodes": fam["n"].map(_int)})
        parts.append(_table(view[["suite", "setting", "split", "family", "predictors", "best", "mean [95% CI]",
                                  "episodes"]], left=("suite", "setting", "split", "family", "best")))
    parts.append("</section>")

    if gallery:
        parts.append('<section id="gallery"><h2>Gallery</h2>')
        for g in gallery:
            if "error" in g:
                parts.append(f'<p class="note">{_e(g["suite"])}: the gallery failed ({_e(g["error"])}).</p>')
            elif g["path"].suffix.lower() == ".png" and g["path"].exists():
                parts.append(f'<figure><img alt="{_e(g["caption"] or g["path"].name)}" src="{_img(g["path"])}">'
                             f"<figcaption>{_e(g['suite'])}: {_e(g['caption'])}</figcaption></figure>")
            else:
                parts.append(f'<p><a href="{_rel(g["path"], out)}">{_e(g["path"].name)}</a> {_e(g["caption"])}</p>')
        parts.append("</section>")

    parts.append('<section id="provenance"><h2>Provenance</h2>')
    parts.append(provenance_html(manifests, df))
    parts.append("</section></body></html>")
    return "\n".join(parts)


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
        parts.append("<details><summary>config</summary><pre>"
                     + _e(json.dumps(m.get("config", {}), indent=2, default=str)) + "</pre></details>")
    return "\n".join(parts)


def render_markdown(df, manifests, lb, verdict, figs, na, out: Path) -> str:
    """A short text summary: verdicts, the novel-task leaderboards, links to figures."""
    lines = ["# triadbench summary", "",
             f"Runs: {', '.join(m['run'] for m in manifests)}. Commit(s): "
             f"{', '.join(sorted({str(m.get('commit', 'unknown')) for m in manifests}))}.", "", "## Verdict", ""]
    for (suite, setting), g in verdict.groupby(["suite", "setting"], sort=False):
        lines.append(f"### {suite}" + (f" ({setting})" if setting else ""))
        lines.append("")
        lines += [f"- {t}" for t in g["text"]]
        lines.append("")
    lines += ["## Novel-task leaderboards", ""]
    for (suite, setting), g in lb[lb["split"] == "novel"].groupby(["suite", "setting"], sort=False):
        lines.append(f"### {suite}" + (f" ({setting})" if setting else ""))
        lines.append("")
        v = leaderboard_view(g)
        lines.append("| " + " | ".join(v.columns) + " |")
        lines.append("|" + "---|" * len(v.columns))
        for _, r in v.iterrows():
            lines.append("| " + " | ".join(str(x).replace("|", "/") for x in r.values) + " |")
        lines.append("")
    lines += ["## Figures", ""]
    for group in figs.values():
        for f in group:
            lines.append(f"- [{f.title}]({_rel(f.png, out)}) (data: [{f.csv.name}]({_rel(f.csv, out)}))")
    lines += ["", "Full report: report.html; tables under tables/.", ""]
    return "\n".join(lines)
