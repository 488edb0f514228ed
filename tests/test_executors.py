"""Executors: worker pools give the serial numbers, survive dead workers, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import plugins_for_tests  # noqa: F401  (registers the test predictors in this process)
from benchmark import get_suite
from benchmark.config import load_config
from benchmark.executors import (LocalExecutor, SerialExecutor, chunk_cells, chunk_cost,
                                 costliest_first, fit_key, report_failures)
from benchmark.runner import Cell, cell_path, plan, run, run_cell

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SMALL = {"d": 4, "max_shots": 4, "pool_size": 4}
CHEAP = "ridge,zero,template-dmmse"
TIMING = ["fit_seconds", "predict_seconds"]
N_SPLITS = len(get_suite("linear-regression", **SMALL).splits)


@pytest.fixture(autouse=True)
def plugin_env(monkeypatch):
    """Worker processes (and `triadbench` subprocesses) import the test predictors too."""
    monkeypatch.setenv("TRIADBENCH_PLUGINS", "plugins_for_tests")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), str(ROOT),
                                                                   os.environ.get("PYTHONPATH")])))


def small_cfg(predictors: str = CHEAP, **run_overrides) -> dict:
    ov = {"suite": "linear-regression", "predictors": predictors, "shots": "0..4",
          "episodes": 10, "params": dict(SMALL), **run_overrides}
    return load_config(None, ov)


def results(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv").drop(columns=TIMING)


def cells_of(df: pd.DataFrame) -> set[str]:
    return set(df["cell"])


def test_chunks_share_a_fitted_predictor_and_keep_plan_order():
    cells, _ = plan(small_cfg())
    for workers in (1, 2, 8):
        chunks = chunk_cells(cells, workers)
        assert all(len({fit_key(c) for c in ch}) == 1 for ch in chunks)
        flat = [c for ch in chunks for c in ch]
        assert sorted(c.key for c in flat) == sorted(c.key for c in cells)
        assert len(chunks) >= min(len(cells), 2 * workers)


def test_chunk_by_keeps_a_pool_together_and_costly_chunks_start_first():
    cfg = load_config(ROOT / "configs" / "default.toml")
    cells, _ = plan(cfg)
    chunks = costliest_first(chunk_cells(cells, 2))
    grids = [ch for ch in chunks if ch[0].predictor == "template-grids"]
    # template-grids memoizes its prior and searches per process: one chunk per ARC version, with
    # both scorings and the small-task section in it, the per-test-input novel cell first
    assert len(grids) == 2
    for ch in grids:
        scorings = [json.loads(c.params)["scoring"] for c in ch]
        assert {json.loads(c.params)["version"] for c in ch} == {json.loads(ch[0].params)["version"]}
        assert set(scorings) == {"per-test-input", "all-or-nothing"}
        assert scorings.index("per-test-input") < scorings.index("all-or-nothing")
    # the LM and ARC chunks (minutes each) come before the closed-form ones (milliseconds)
    heavy = {"smollm2-icl", "smollm2-lora-ttt", "template-grids"}
    first = [ch[0].predictor for ch in chunks[:4]]
    assert set(first) == heavy and first[0] == "smollm2-icl"
    assert [chunk_cost(ch) for ch in chunks] == sorted((chunk_cost(ch) for ch in chunks), reverse=True)
    # other predictors still chunk by every suite parameter: one fit per chunk
    assert all(len({c.params for c in ch}) == 1 for ch in chunks if ch[0].predictor != "template-grids")


def test_one_and_two_local_workers_match_serial(tmp_path):
    serial = run(small_cfg(), tmp_path / "serial", progress=False)
    assert serial["executor"] == "serial"
    one = run(small_cfg(executor="local", workers=1), tmp_path / "one", progress=False)
    two = run(small_cfg(executor="local", workers=2), tmp_path / "two", progress=False)
    assert "1 worker" in one["executor"] and "2 worker" in two["executor"]
    assert run(small_cfg(), tmp_path / "two", progress=False)["cells"]["run_now"] == 0
    ref = results(tmp_path / "serial")
    assert len(ref) == 3 * N_SPLITS * 5 * 10 and (ref["status"] == "ok").all()
    pd.testing.assert_frame_equal(ref, results(tmp_path / "one"))
    pd.testing.assert_frame_equal(ref, results(tmp_path / "two"))


def test_batch_size_does_not_change_results(tmp_path):
    run(small_cfg(), tmp_path / "big", progress=False)
    run(small_cfg(batch_size=3), tmp_path / "small", progress=False)
    big, small = results(tmp_path / "big"), results(tmp_path / "small")
    pd.testing.assert_frame_equal(big.drop(columns="prediction"), small.drop(columns="prediction"),
                                  check_exact=False, rtol=1e-12, atol=0)


def test_dask_local_cluster_matches_serial(tmp_path):
    run(small_cfg(), tmp_path / "serial", progress=False)
    m = run(small_cfg(executor="dask", workers=2), tmp_path / "dask", progress=False)
    assert m["executor"].startswith("dask (LocalCluster") and not m["failed_cells"]
    pd.testing.assert_frame_equal(results(tmp_path / "serial"), results(tmp_path / "dask"))
    # the cells Dask's workers computed (written here) pass their checks: a rerun reuses them all
    again = run(small_cfg(), tmp_path / "dask", progress=False)
    assert again["cells"]["run_now"] == 0 and not again["redone"]["damaged"]


def test_run_killed_halfway_resumes_to_the_same_results(tmp_path):
    from benchmark.cli import main

    preds = "test-sleep,ridge,zero"  # test-sleep (first) makes the run slow enough to kill
    out = tmp_path / "killed"
    args = ["run", "--out", str(out), "--suite", "linear-regression", "--predictors", preds,
            "--shots", "0..4", "--episodes", "10", "--no-report", "--quiet"]
    args += [a for k, v in SMALL.items() for a in ("--param", f"{k}={v}")]
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.cli", *args, "--executor", "local",
                             "--workers", "2"], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total = 3 * N_SPLITS * 5
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.glob("cells/*.csv"))) >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its worker processes at once
    finally:
        proc.wait(timeout=60)
    done_before = len(list(out.glob("cells/*.csv")))
    assert 5 <= done_before < total and not (out / "results.csv").exists()
    assert main(args) == 0  # run again (in this process, serially): finishes the rest only
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cells"]["run_now"] == total - done_before
    run(small_cfg(preds), tmp_path / "uninterrupted", progress=False)
    pd.testing.assert_frame_equal(results(tmp_path / "uninterrupted"), results(out))


def test_predictor_raising_on_some_episodes_gives_error_rows(tmp_path):
    m = run(small_cfg("zero,test-raise-some", executor="local", workers=2), tmp_path, progress=False)
    assert not m["failed_cells"] and m["cells"]["missing"] == 0
    df = results(tmp_path)
    bad = df[df.predictor == "test-raise-some"]
    assert set(bad["status"]) == {"ok", "error"}
    assert bad.loc[bad.status == "error", "error"].str.contains("negative first coordinates").all()
    assert (df.loc[df.predictor == "zero", "status"] == "ok").all()
    assert len(df) == 2 * N_SPLITS * 5 * 10  # every episode has its row, failed or not


def test_killed_worker_loses_only_its_cell_and_run_exits_nonzero(tmp_path, capsys):
    from benchmark.cli import main

    args = ["run", "--out", str(tmp_path), "--suite", "linear-regression", "--predictors",
            "ridge,test-kill", "--shots", "0..4", "--episodes", "10", "--no-report", "--quiet",
            "--executor", "local", "--workers", "2"]
    args += [a for k, v in SMALL.items() for a in ("--param", f"{k}={v}")]
    assert main(args) == 1
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    failed = manifest["failed_cells"]
    splits = sorted(get_suite("linear-regression", **SMALL).splits)
    assert sorted((f["label"], f["split"], f["shots"]) for f in failed) == [
        ("test-kill", s, 2) for s in splits]
    assert manifest["cells"]["missing"] == len(splits)
    assert len(cells_of(results(tmp_path))) == 2 * len(splits) * 5 - len(splits)
    assert failed[0]["cell"] in (tmp_path / "failures.log").read_text()
    assert f"{len(splits)} cell(s) failed" in capsys.readouterr().err


def test_cell_raising_outright_is_logged_and_the_rest_runs(tmp_path):
    good = plan(small_cfg("zero"))[0][0]
    bad = Cell("no-such-suite", "{}", "zero", "{}", "zero", "novel", 0, 0, 10)
    (tmp_path / "cells").mkdir()
    got = {c.key: (df, err) for c, df, err in LocalExecutor(workers=1, work=run_cell).run([bad, good], tmp_path)}
    assert got[good.key][1] is None and cell_path(tmp_path, good).exists()
    assert got[bad.key][0] is None and "KeyError" in got[bad.key][1]
    assert "Traceback" in got[bad.key][1] and not cell_path(tmp_path, bad).exists()
    report_failures(tmp_path, [{"cell": bad.key, "label": "zero", "error": got[bad.key][1]}],
                    stream=open(os.devnull, "w"))
    assert "no-such-suite" in (tmp_path / "failures.log").read_text()


def test_timeout_fails_only_the_slow_cell(tmp_path):
    cfg = small_cfg("zero", timeout=1.0)
    cfg["suites"][0]["splits"] = ["novel"]
    cfg["suites"][0]["predictors"].append({"name": "test-sleep",
                                           "params": {"seconds": 60, "only_shots": 2}})
    t0 = time.monotonic()
    m = run(cfg, tmp_path, progress=False)
    assert time.monotonic() - t0 < 50
    assert [(f["label"], f["shots"]) for f in m["failed_cells"]] == [("test-sleep", 2)]
    assert m["failed_cells"][0]["error"].startswith("timeout")
    assert m["cells"]["missing"] == 1


def test_worker_stuck_in_native_code_is_killed_after_the_grace_period(tmp_path):
    cfg = small_cfg("zero")
    cfg["suites"][0]["splits"] = ["novel"]
    cfg["suites"][0]["predictors"].append({"name": "test-sleep", "params": {
        "seconds": 120, "only_shots": 2, "native": True}})
    t0 = time.monotonic()
    m = run(cfg, tmp_path, progress=False, executor=LocalExecutor(workers=2, timeout=1, grace=1))
    assert time.monotonic() - t0 < 100
    assert [(f["label"], f["shots"]) for f in m["failed_cells"]] == [("test-sleep", 2)]
    assert "killed" in m["failed_cells"][0]["error"]
    assert m["cells"]["missing"] == 1


def test_changing_one_setting_recomputes_only_its_cells(tmp_path):
    first = run(small_cfg("ridge,zero"), tmp_path, progress=False)
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cells").glob("*.csv")}
    assert first["cells"]["run_now"] == len(files) == 2 * N_SPLITS * 5
    cfg = small_cfg("ridge,zero")
    cfg["suites"][0]["predictors"][0]["params"] = {"alpha": 1.0}  # ridge changes, zero does not
    second = run(cfg, tmp_path, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cells").glob("*.csv")}
    assert second["cells"]["run_now"] == N_SPLITS * 5 and len(after) == len(files) + N_SPLITS * 5
    assert all(after[name] == files[name] for name in files)  # nothing rewritten
    assert run(small_cfg("ridge,zero", batch_size=7), tmp_path, progress=False)["cells"]["run_now"] == 0


def test_serial_executor_reports_a_broken_cell(tmp_path):
    bad = Cell("no-such-suite", "{}", "zero", "{}", "zero", "novel", 0, 0, 10)
    [(cell, df, err)] = list(SerialExecutor(work=run_cell).run([bad], tmp_path))
    assert cell is bad and df is None and "no-such-suite" in err


def test_default_config_uses_local_workers_but_command_line_runs_stay_serial():
    assert load_config(ROOT / "configs" / "default.toml")["run"]["executor"] == "local"
    cfg = load_config(None, {"suite": "linear-regression"})
    assert cfg["run"]["executor"] == "serial"
    # the rest of the default run section still applies
    assert cfg["run"]["episodes"] == load_config(ROOT / "configs" / "default.toml")["run"]["episodes"]
