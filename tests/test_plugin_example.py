"""The example plugin package installs offline, registers through its entry point and runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "examples" / "plugin-predictor"
SMALL = ["--param", "d=4", "--param", "max_shots=4", "--param", "pool_size=8",
         "--param", "n_prompts=16"]


@pytest.fixture(scope="module")
def installed() -> None:
    """pip-install the example into this interpreter's environment, offline (--no-index)."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
           "--no-build-isolation", "-e", str(PLUGIN)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}"


@pytest.fixture(scope="module")
def run_dir(installed, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plugin-run")
    triadbench = Path(sys.executable).with_name("triadbench")
    cmd = [str(triadbench), "run", "--out", str(out), "--suite", "linear-regression",
           "--predictors", "ridge,ridge-cv", "--shots", "0,4", "--splits", "seen-task,novel",
           "--episodes", "4", "--quiet", "--no-report", *SMALL]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}"
    return out


def test_plugin_runs_from_the_command_line(run_dir: Path) -> None:
    df = pd.read_csv(run_dir / "results.csv")
    mine = df[df["predictor"] == "ridge-cv"]
    assert len(mine) == 2 * 2 * 4  # splits x shots x episodes
    assert (mine["status"] == "ok").all(), mine["error"].unique()
    assert set(mine["family"]) == {"reference"}
    # with 4 demonstrations in 4 dimensions it learns: error below its 0-shot error
    by_shots = mine[mine["split"] == "novel"].groupby("shots")["score"].mean()
    assert by_shots[4] < by_shots[0]


def test_plugin_passes_conformance(installed, monkeypatch) -> None:
    from importlib.metadata import entry_points

    from benchmark.registry import PREDICTOR_GROUP
    from benchmark.testing import check_predictor

    # the installed metadata declares the entry point; its module loads (the editable install's
    # import hook is only active in new interpreters, so put the source folder on the path here)
    monkeypatch.syspath_prepend(str(PLUGIN))
    (ep,) = [e for e in entry_points(group=PREDICTOR_GROUP) if e.name == "ridge-cv"]
    cls = ep.load()
    report = check_predictor(cls, shots=[0, 2, 4], episodes=2)
    assert {"no-target-access", "batch-independent", "frozen-weights"} <= set(report.rules)


def test_plugin_appears_in_the_report(run_dir: Path, tmp_path: Path) -> None:
    from benchmark.report import build_report

    html = build_report([run_dir], tmp_path)
    assert "ridge-cv" in Path(html).read_text()
    assert "ridge-cv" in (tmp_path / "summary.md").read_text()
