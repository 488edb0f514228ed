"""The report: figures exist, their CSVs equal aggregations recomputed here, runs merge, n/a stays n/a."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main

PREDICTORS = "lookup,template-dmmse,ridge,zero,icl-transformer"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A small real run: two pool sizes without a shipped checkpoint (icl-transformer is n/a),
    d=4, shots 0..4, 24 episodes per cell (above the minimum of 20 units for a claim)."""
    out = tmp_path_factory.mktemp("run")
    rc = main(["run", "--suite", "linear-regression", "--out", str(out), "--param", "d=4", "--param", "max_shots=4",
               "--param", "n_prompts=32", "--param", "pool_size=8,32", "--episodes", "24", "--shots", "0..4",
               "--predictors", PREDICTORS, "--no-report", "--quiet"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def report_dir(run_dir, tmp_path_factory) -> Path:
    from benchmark.report import build_report

    out = tmp_path_factory.mktemp("report")
    path = build_report([run_dir], out)
    assert path == out / "report.html"
    return out


def results(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(run_dir / "results.csv", dtype={"pool_size": str, "episode_id": str})
    return df


def test_every_figure_and_table_is_written(report_dir):
    figs = report_dir / "figures"
    stems = ["score_vs_shots__linear-regression__pool_size-8", "score_vs_shots__linear-regression__pool_size-32",
             "transition__linear-regression", "triad_map__linear-regression"]
    for stem in stems:
        for ext in ("png", "svg", "csv"):
            p = figs / f"{stem}.{ext}"
            assert p.exists() and p.stat().st_size > 0, p
    for name in ("leaderboard", "family_summary", "curves", "verdict", "triad_points", "answer"):
        assert (report_dir / "tables" / f"{name}.csv").exists()
    page = (report_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(stems)
    for stem in stems:  # each figure links to the CSV it was drawn from
        assert f'href="figures/{stem}.csv"' in page
    assert (report_dir / "summary.md").read_text().startswith("# triadbench summary")


def test_score_vs_shots_csv_equals_recomputed_means(run_dir, report_dir):
    df = results(run_dir)
    ok = df[df["status"] == "ok"]
    for pool in ("8", "32"):
        fig = pd.read_csv(report_dir / "figures" / f"score_vs_shots__linear-regression__pool_size-{pool}.csv")
        sub = ok[ok["pool_size"] == pool]
        want = sub.groupby(["split", "predictor", "shots"])["score"].agg(["mean", "count"]).reset_index()
        got = fig.merge(want, on=["split", "predictor", "shots"], how="outer", suffixes=("", "_want"))
        assert len(got) == len(want) == len(fig)
        np.testing.assert_allclose(got["mean"], got["mean_want"], rtol=1e-9)
        assert (got["n"] == got["count"]).all()
        assert (got["lo"] <= got["mean"] + 1e-12).all() and (got["mean"] <= got["hi"] + 1e-12).all()


def test_transition_csv_equals_recomputed_means(run_dir, report_dir):
    df = results(run_dir)
    from benchmark.tables import TRANSITION_PREDICTORS

    ok = df[(df["status"] == "ok") & (df["shots"] >= 1) & df["split"].isin(["novel", "seen-task"])
            & df["predictor"].isin(TRANSITION_PREDICTORS)]
    fig = pd.read_csv(report_dir / "figures" / "transition__linear-regression.csv", dtype={"pool_size": str})
    mean_rows = fig[fig["measure"].str.startswith("mean over shots")]
    want = ok.groupby(["split", "predictor", "pool_size"])["score"].mean().rename("want").reset_index()
    got = mean_rows.merge(want, on=["split", "predictor", "pool_size"])
    assert len(got) == len(want) == len(mean_rows)
    np.testing.assert_allclose(got["mean"], got["want"], rtol=1e-9)
    assert set(fig["predictor"]) >= {"lookup", "template-dmmse", "ridge"}


def test_triad_csv_gap_is_novel_minus_memorized_error(run_dir, report_dir):
    df = results(run_dir)
    ok = df[(df["status"] == "ok") & (df["shots"] >= 1)]
    fig = pd.read_csv(report_dir / "figures" / "triad_map__linear-regression.csv")
    for _, r in fig.iterrows():
        sub = ok[(ok["predictor"] == r["predictor"]) & (ok["pool_size"] == r["setting"].split("=")[1])]
        gap = sub[sub["split"] == "novel"]["score"].mean() - sub[sub["split"] == "memorized"]["score"].mean()
        assert r["gap"] == pytest.approx(gap, rel=1e-9)
    # lookup answers novel queries with its fallback whatever the shots: exactly no gain
    lk = fig[fig["predictor"] == "lookup"]
    assert (lk["gain"].abs() < 1e-12).all()


def test_not_applicable_is_na_never_zero(report_dir):
    lb = pd.read_csv(report_dir / "tables" / "leaderboard.csv")
    icl = lb[lb["predictor"] == "icl-transformer"]
    assert len(icl) and (icl["status"] == "not applicable").all()
    assert icl["mean_shots_ge1"].isna().all() and icl["reason"].str.len().gt(0).all()
    page = (report_dir / "report.html").read_text()
    assert "n/a: " in page


def test_verdict_sentences_follow_the_intervals(report_dir):
    from benchmark.stats import MIN_UNITS

    v = pd.read_csv(report_dir / "tables" / "verdict.csv")
    assert set(v["predictor"]) == {"lookup", "template-dmmse", "ridge", "zero"}
    for _, r in v.iterrows():
        lo, hi = r["gain_lo"], r["gain_hi"]
        assert r["gain_n"] >= MIN_UNITS
        expected = 1 if lo > 0 else (-1 if hi < 0 else 0)
        assert r["gain_decision"] == expected
        flat = expected == 0 and lo == 0 and hi == 0  # e.g. lookup: the same answer at every shot count
        assert ("cannot decide whether demonstrations help" in r["text"]) == (expected == 0 and not flat)
        assert ("does not change with demonstrations" in r["text"]) == flat
        assert ("improves with demonstrations" in r["text"]) == (expected == 1)
        # improving with demonstrations is never, by itself, learning beyond templates
        if r["family"] == "template":
            assert r["beyond_templates"].startswith("no")
    assert (v.loc[v["predictor"] == "lookup", "gain_decision"] == 0).all()


def test_merging_deduplicates_cells_and_calls_the_gallery_hook(run_dir, tmp_path):
    import matplotlib.pyplot as plt

    from benchmark.report import GALLERIES, build_report, register_gallery
    from benchmark.tables import load_runs

    single, _ = load_runs([run_dir])
    merged, manifests = load_runs([run_dir, run_dir])
    assert len(merged) == len(single) and len(manifests) == 2
    # a second run with another seed adds its rows
    other = tmp_path / "other"
    rc = main(["run", "--suite", "linear-regression", "--out", str(other), "--param", "d=4", "--param", "max_shots=4",
               "--param", "n_prompts=32", "--param", "pool_size=8", "--episodes", "5", "--seed", "1", "--shots", "0..4",
               "--predictors", "ridge,lookup", "--splits", "novel,memorized", "--no-report", "--quiet"])
    assert rc == 0
    both, _ = load_runs([run_dir, other])
    assert len(both) == len(single) + len(pd.read_csv(other / "results.csv"))

    seen = {}

    @register_gallery("linear-regression")
    def draw(results_df, out_dir):
        seen["rows"] = len(results_df)
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, 1])
        p = Path(out_dir) / "example.png"
        fig.savefig(p)
        plt.close(fig)
        return [(p, "an example")]

    try:
        page = build_report([run_dir, other], tmp_path / "merged").read_text()
    finally:
        GALLERIES.pop("linear-regression", None)
    assert str(other) in page and str(run_dir) in page
    assert seen["rows"] == len(both)
    assert 'id="gallery"' in page and "an example" in page


def test_grouped_bootstrap_matches_stats_bootstrap():
    from benchmark.stats import bootstrap_ci
    from benchmark.tables import grouped_bootstrap

    rng = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(["a", "b", "c"], [40, 200, 1]),
                      "score": np.r_[rng.exponential(1, 40), rng.normal(5, 2, 200), [3.0]]})
    got = grouped_bootstrap(d, ["g"], n_boot=2000).set_index("g")
    for g, sub in d.groupby("g"):
        m, lo, hi = bootstrap_ci(sub["score"], n_boot=2000)
        assert got.loc[g, "mean"] == pytest.approx(m)
        width = hi - lo
        assert abs(got.loc[g, "lo"] - lo) <= 0.15 * width + 1e-12
        assert abs(got.loc[g, "hi"] - hi) <= 0.15 * width + 1e-12
    assert got.loc["c", "lo"] == got.loc["c", "hi"] == 3.0


def test_groups_from_sorted_codes_equal_sorting_and_grouping_the_frame():
    """grouped_bootstrap's groups: each column factorized once gives the order, group numbers
    and keys of sort_values + groupby + drop_duplicates (text, numbers, categories)."""
    from benchmark.tables import _sorted_groups

    rng = np.random.default_rng(5)
    for trial in range(30):
        m = int(rng.integers(1, 500))
        d = pd.DataFrame({"a": rng.choice(["x", "y", "Z", "w", ""], m), "b": rng.integers(-2, 3, m),
                          "c": pd.Categorical(rng.choice(["q", "p"], m), categories=["q", "p"]),
                          "score": rng.random(m)}).astype({"a": "str"})
        for by in (["a"], ["b", "a"], ["c", "a", "b"]):
            got, gid, keys = _sorted_groups(d, by)
            want = d.sort_values(by, kind="stable")
            pd.testing.assert_frame_equal(got, want)
            assert (gid == want.groupby(by, sort=False, observed=True).ngroup().to_numpy()).all()
            pd.testing.assert_frame_equal(keys, want.drop_duplicates(by)[by].reset_index(drop=True))


def test_missing_results_is_a_clear_error(tmp_path):
    from benchmark.report import build_report

    with pytest.raises(FileNotFoundError, match="results.csv"):
        build_report([tmp_path], tmp_path / "out")


def test_suites_with_task_groups_get_one_setting_per_group():
    from benchmark.tables import setting_labels

    df = pd.DataFrame({"suite": ["strings"] * 3 + ["linear-regression"] * 2,
                       "suite_config": ['{"max_shots": 16}'] * 3 + ['{"pool_size": 4}', '{"pool_size": 16}'],
                       "task_id": ["knowledge/capital", "rules/reverse", "", "novel-1", "novel-2"]})
    assert setting_labels(df).tolist() == ["kind=knowledge", "kind=rules", "", "pool_size=4", "pool_size=16"]


def test_figures_drawn_in_background_processes_equal_those_drawn_here(tmp_path, monkeypatch):
    """The report's Renderer: the same figure data and captions from a worker as in-process, and
    a figure function's error reaches the caller."""
    from benchmark import executors
    from benchmark import figures as F

    curves = pd.DataFrame({"suite": "linear-regression", "setting": "", "split": "novel",
                           "predictor": ["ridge"] * 3 + ["zero"] * 3, "shots": [0, 1, 2] * 2,
                           "mean": [1.0, 0.5, 0.25, 1.0, 1.0, 1.0], "lo": 0.1, "hi": 2.0, "n": 10})
    styler = F.Styler(["ridge", "zero"])
    got = {}
    for cores in (1, 2):  # one core: drawn at once; two: one drawing process beside this one
        monkeypatch.setattr(executors, "available_cores", lambda cores=cores: cores)
        with F.Renderer({"linear-regression": False}) as r:
            assert r.workers == cores - 1
            out = tmp_path / str(cores)
            fig = r.submit(F.score_vs_shots, curves, "linear-regression", "", "mse", styler, out).result()
            with pytest.raises(KeyError):
                r.submit(F.score_vs_shots, curves.drop(columns="mean"), "linear-regression", "",
                         "mse", styler, out).result()
        got[cores] = (fig.title, fig.caption, fig.csv.read_text(), fig.png.exists(), fig.svg.exists())
    assert got[1] == got[2] and got[1][3:] == (True, True)


def _pid() -> int:
    import os

    return os.getpid()


def test_figures_no_worker_has_started_are_drawn_here_newest_first(monkeypatch):
    """Renderer.finish: the caller's core is free, so it takes back what the worker has not begun
    (the newest first); a function that cannot be sent to a worker is drawn here at once."""
    import os

    from benchmark import executors
    from benchmark import figures as F

    monkeypatch.setattr(executors, "available_cores", lambda: 2)
    with F.Renderer() as r:
        r.start()
        tasks = [r.submit(_pid) for _ in range(8)]
        r.finish()
        pids = [t.result() for t in tasks]
        assert r.submit(lambda: os.getpid()).result() == os.getpid()
    here = [p == os.getpid() for p in pids]
    assert here[-1] and sum(here) >= 4  # at most the few the pool had queued went to the worker
    assert here == sorted(here)  # taken back from the newest


def _exit_unless_in(pid: int) -> int:
    import os

    if os.getpid() != pid:
        os._exit(3)  # a worker dying mid-figure
    return pid


def test_a_worker_that_dies_is_replaced_by_drawing_here(monkeypatch):
    import os
    import time

    from benchmark import executors
    from benchmark import figures as F

    monkeypatch.setattr(executors, "available_cores", lambda: 2)
    with F.Renderer() as r:
        first = r.submit(_exit_unless_in, os.getpid())
        for _ in range(600):  # until the worker has it (once it has started)
            if first.state == "sent":
                break
            time.sleep(0.05)
        assert first.state == "sent"
        assert first.result() == os.getpid()  # the worker died drawing it: drawn here instead
        later = [r.submit(_pid) for _ in range(3)]
        r.finish()
        assert [t.result() for t in later] == [os.getpid()] * 3


def test_gallery_drawn_in_a_background_process_equals_the_one_drawn_here(tmp_path, monkeypatch):
    """The ARC gallery through the report's Renderer: the same PNG bytes from a worker as here."""
    from benchmark import arc_gallery, executors
    from benchmark import figures as F
    from benchmark.suites.arc import load_version

    tid, task = next(iter(load_version("ARC-AGI-1")[1].items()))
    expected = np.asarray(task.test[0][1]).tolist()
    wrong = [[(v + 1) % 10 for v in row] for row in expected]
    df = pd.DataFrame([{"suite": "arc", "split": "novel", "suite_config": json.dumps({"version": "ARC-AGI-1"}),
                        "task_id": tid, "status": "ok", "predictor": p, "score": s,
                        "prediction": json.dumps([att]), "info": ""}
                       for p, s, att in (("solver", 1.0, [expected]), ("guesser", 0.0, [wrong, expected]))])
    got = {}
    for cores in (1, 2):
        monkeypatch.setattr(executors, "available_cores", lambda cores=cores: cores)
        with F.Renderer() as r:
            future = r.submit(F.in_style, arc_gallery.draw_gallery, df, tmp_path / str(cores))
            paths = future.result()
            assert (r.workers, isinstance(future, F._Task)) == (cores - 1, cores == 2)
        got[cores] = [(p.name, p.read_bytes()) for p in paths]
    assert len(got[1]) == 1 and got[1] == got[2]
