"""The ARC report section reads template programs from the results' info column (no refit)."""

import json
from types import SimpleNamespace

import pandas as pd

from benchmark.suites.arc_report import report_sections


def _row(task: str, score: float, depth: int, program: str, split: str = "novel") -> dict:
    info = {"programs": [program], "depths": [depth], "in_pool": [3 if depth else 0]}
    return {"suite": "arc", "predictor": "template-grids", "split": split, "status": "ok",
            "score": score, "task_id": task, "predictor_params": "{}",
            "suite_config": json.dumps({"version": "ARC-AGI-1", "scoring": "per-test-input"}),
            "info": json.dumps(info) if score > 0 else ""}


def test_reach_section_counts_depths_from_recorded_programs(tmp_path):
    df = pd.DataFrame([_row("a", 1.0, 1, "flip_lr"), _row("b", 0.5, 2, "crop | recolour"),
                       _row("c", 0.0, 0, ""), _row("d", 1.0, 0, "identity | layout g g")])
    ctx = SimpleNamespace(tab_dir=tmp_path)
    (sec,) = report_sections(df, ctx)
    reach = pd.read_csv(tmp_path / "arc_reach.csv")
    novel = reach.set_index("depth")
    assert novel.loc[0, "solved"] == 1 and novel.loc[1, "reachable"] == 2 and novel.loc[2, "reachable"] == 3
    assert "crop \\| recolour" in sec.markdown  # a program's pipe does not break the markdown table
    assert "flip_lr" in sec.html


def test_no_section_without_template_grids(tmp_path):
    df = pd.DataFrame([{**_row("a", 1.0, 1, "x"), "predictor": "lookup"}])
    assert report_sections(df, SimpleNamespace(tab_dir=tmp_path)) == []


def test_a_split_without_episodes_is_a_skipped_row_not_a_failed_cell(tmp_path):
    from benchmark.cli import main

    rc = main(["run", "--suite", "arc", "--predictors", "lookup", "--splits", "novel", "--episodes", "2",
               "--param", "version=ARC-AGI-2", "--param", "max_task_cells=1", "--out", str(tmp_path / "r"),
               "--no-report", "--quiet"])
    df = pd.read_csv(tmp_path / "r" / "results.csv", keep_default_na=False)
    assert rc == 0
    assert list(df["status"]) == ["skipped"] and "no episode" in df["error"][0]
