"""The ARC suite's own report section: which novel tasks template programs reach, and at what depth.

Registered as a built-in section provider (``benchmark.report.BUILTIN_SECTIONS``) and imported
only when a report holds ARC results. It reads the programs from the results' ``info`` column
(written by the runner from ``template-grids``' answers); it never refits the predictor.
"""

from __future__ import annotations

import html

import pandas as pd

SUITE = "arc"


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table class='data'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _table_md(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def report_sections(results: pd.DataFrame, ctx) -> list:
    """The "ARC: reach of template programs" section (empty when template-grids was not run)."""
    from benchmark.arc_gallery import TEMPLATE, reach_table, template_programs
    from benchmark.report import Section

    if TEMPLATE not in set(results["predictor"]):
        return []
    programs = template_programs(results, splits=("novel", "seen-task"), recompute=False)
    reach = reach_table(programs)
    programs.to_csv(ctx.tab_dir / "arc_programs.csv", index=False)
    reach.to_csv(ctx.tab_dir / "arc_reach.csv", index=False)
    totals = (results[(results["predictor"] == TEMPLATE) & (results["status"] == "ok")]
              .groupby(["suite_config", "split"])["task_id"].nunique())
    intro = (f"Tasks on which {TEMPLATE} scored, by the depth of the program it answered with "
             "(depth 0: only a step fitted to the demonstrations, e.g. a tiling layout). "
             "'reachable' counts tasks solved at most at that depth; 'program_in_pool' counts those "
             "whose primitive sequence also solved a training task offline: selection of a "
             "memorized template rather than a new composition. Programs per task: "
             "tables/arc_programs.csv.")
    notes = []
    if programs.empty:
        notes.append(f"{TEMPLATE} scored on no task (or the run recorded no programs in `info`).")
    shown = reach[reach["depth"] <= 3] if len(reach) else reach
    html_parts, md_parts = [], []
    if len(shown):
        html_parts.append(_table_html(shown))
        md_parts.append(_table_md(shown))
    if len(programs):
        ex = programs[programs["split"] == "novel"].drop_duplicates("task_id").head(12)
        ex = ex[["version", "task_id", "depth", "program", "in_pool"]]
        if len(ex):
            html_parts.append("<p>Examples of novel tasks reached, with the program found:</p>"
                              + _table_html(ex))
            md_parts.append("Examples of novel tasks reached:\n\n" + _table_md(ex))
    scored = "; ".join(f"{cfg} {sp}: {n} tasks" for (cfg, sp), n in totals.items())
    if scored:
        notes.append(f"tasks scored per configuration and split: {scored}")
    return [Section("arc-reach", "ARC: reach of template programs", paragraphs=[intro], notes=notes,
                    html="".join(html_parts), markdown="\n\n".join(md_parts))]
