"""The harness's promises on the linear-regression suite."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark import get_predictor, get_suite
from benchmark.config import ConfigError, load_config
from benchmark.contamination import ContaminationError, audit
from benchmark.predictor import Predictor
from benchmark.registry import register_predictor, register_suite
from benchmark.runner import plan, run
from benchmark.suites.linear_regression import LinearRegression

SMALL = {"d": 4, "max_shots": 8, "pool_size": 8, "n_prompts": 32}


def small_cfg(predictors, **run_kw):
    return {"out": None, "source": "test",
            "run": {"seeds": [0], "episodes": 12, "batch_size": 5, "executor": "serial",
                    "workers": None, "scheduler": None, "timeout": None, **run_kw},
            "suites": [{"name": "linear-regression", "params": dict(SMALL), "splits": None,
                        "shots": [0, 2, 4, 8], "predictors": [{"name": p, "params": {}} for p in predictors],
                        "episodes": None}]}


def test_episodes_are_deterministic_and_share_points_across_shots(small_lr):
    a = small_lr.episodes("novel", 3, 10, seed=1)
    b = small_lr.episodes("novel", 3, 10, seed=1)
    c = small_lr.episodes("novel", 6, 10, seed=1)
    np.testing.assert_array_equal(a.batch.support_x, b.batch.support_x)
    np.testing.assert_array_equal(a.batch.support_x, c.batch.support_x[:, :3])
    np.testing.assert_array_equal(a.batch.query_x, c.batch.query_x)
    d = small_lr.episodes("novel", 3, 10, seed=2)
    assert not np.allclose(a.batch.support_x, d.batch.support_x)


def test_batch_carries_no_targets(small_lr):
    ev = small_lr.episodes("novel", 4, 3, seed=0)
    fields = vars(ev.batch)
    for value in fields.values():
        if isinstance(value, np.ndarray) and value.shape == ev.targets.shape:
            assert not np.allclose(value, ev.targets)


def test_lookup_is_exact_on_memorized_and_zero_on_novel(small_lr):
    pool = small_lr.pool()
    lk = get_predictor("lookup").fit(pool)
    ev = small_lr.episodes("memorized", 4, 20, seed=0)
    pred = lk.predict(ev.batch)
    # the memorized answers are exactly what the offline prompts showed
    index = {tuple(np.round(x, 12)): y for xs, ys in zip(pool.prompts.query_x, pool.prompt_targets)
             for x, y in zip(xs, ys)}
    expected = np.array([[index[tuple(np.round(x, 12))] for x in xs] for xs in ev.batch.query_x])
    np.testing.assert_array_equal(pred, expected)
    novel = small_lr.episodes("novel", 4, 20, seed=0)
    zero = get_predictor("zero").fit(pool)
    np.testing.assert_array_equal(lk.predict(novel.batch), zero.predict(novel.batch))
    assert small_lr.score(ev, pred).mean() < 0.5 * small_lr.score(novel, lk.predict(novel.batch)).mean()


def test_dmmse_matches_closed_form_posterior_mean():
    suite = LinearRegression(d=3, max_shots=6, pool_size=5, noise=0.5, n_prompts=8)
    pool = suite.pool()
    ev = suite.episodes("novel", 5, 7, seed=3)
    got = get_predictor("template-dmmse").fit(pool).predict(ev.batch)
    W = pool.weights
    for b in range(len(ev)):
        X, y = ev.batch.support_x[b], ev.batch.support_y[b]
        loglik = np.array([-np.sum((y - X @ w) ** 2) / (2 * 0.5) for w in W])
        post = np.exp(loglik - loglik.max())
        post /= post.sum()
        w_mean = sum(p * w for p, w in zip(post, W))
        np.testing.assert_allclose(got[b], ev.batch.query_x[b] @ w_mean, rtol=1e-8, atol=1e-10)
    best = get_predictor("template-best").fit(pool).predict(ev.batch)
    for b in range(len(ev)):
        X, y = ev.batch.support_x[b], ev.batch.support_y[b]
        w = W[np.argmin([np.sum((y - X @ w) ** 2) for w in W])]
        np.testing.assert_allclose(best[b], ev.batch.query_x[b] @ w)


def test_ridge_beats_ols_under_noise_at_shots_equal_d():
    suite = LinearRegression(pool_size=16)
    pool = suite.pool()
    ev = suite.episodes("novel", suite.d, 2000, seed=0)
    ridge = suite.score(ev, get_predictor("ridge").fit(pool).predict(ev.batch)).mean()
    ols = suite.score(ev, get_predictor("ols").fit(pool).predict(ev.batch)).mean()
    assert ridge < ols


def test_template_on_pool_tasks_beats_ridge_and_loses_on_novel():
    suite = LinearRegression(pool_size=4)
    pool = suite.pool()
    t, r = get_predictor("template-dmmse").fit(pool), get_predictor("ridge").fit(pool)
    seen = suite.episodes("seen-task", 8, 500, seed=0)
    novel = suite.episodes("novel", 8, 500, seed=0)
    assert suite.score(seen, t.predict(seen.batch)).mean() < suite.score(seen, r.predict(seen.batch)).mean()
    assert suite.score(novel, t.predict(novel.batch)).mean() > suite.score(novel, r.predict(novel.batch)).mean()


def test_offline_phase_never_sees_a_novel_episode(tmp_path):
    seen_pools = []

    @register_predictor("test-spy")
    class Spy(Predictor):
        family = "reference"

        def fit(self, pool):
            seen_pools.append(pool)
            return self

        def predict(self, batch):
            return np.zeros(batch.query_x.shape[:2])

    cfg = small_cfg(["test-spy"])
    run(cfg, tmp_path / "run", progress=False)
    assert seen_pools
    suite = LinearRegression(**SMALL)
    for split in ("novel", "ood"):
        ev = suite.episodes(split, suite.max_shots, 12, seed=0)
        novel_w = {tuple(w) for w in ev.extra["weights"]}
        novel_x = {tuple(x) for xs in ev.batch.query_x for x in xs} | {
            tuple(x) for xs in ev.batch.support_x for x in xs}
        for pool in seen_pools:
            assert not novel_w & {tuple(w) for w in pool.weights}
            P = pool.prompts
            offline_x = {tuple(x) for xs in P.support_x for x in xs} | {tuple(x) for xs in P.query_x for x in xs}
            assert not novel_x & offline_x
            assert not set(ev.task_hashes) & set(pool.task_hashes)


def test_contamination_check_catches_a_planted_leak(tmp_path):
    base = LinearRegression(**SMALL)
    leaked_w = base.episodes("novel", 0, 3, seed=0).extra["weights"][1]

    @register_suite("test-leaky-lr")
    class Leaky(LinearRegression):
        name = "test-leaky-lr"

        def _pool_weights(self):
            w = super()._pool_weights()
            w[2] = leaked_w  # a novel task slipped into the pool
            return w

    suite = Leaky(**SMALL)
    with pytest.raises(ContaminationError, match="novel:novel-1"):
        audit(suite.pool(), [suite.episodes("novel", 8, 3, seed=0)])
    cfg = small_cfg(["zero"])
    cfg["suites"][0]["name"] = "test-leaky-lr"
    with pytest.raises(ContaminationError):
        run(cfg, tmp_path / "leak", progress=False)
    assert not (tmp_path / "leak" / "results.csv").exists()


def test_failing_episodes_become_error_rows(tmp_path):
    # predictors see opaque ids only: recognise episode 3 by its content
    third = get_suite("linear-regression", **SMALL).episodes("novel", 0, 4, seed=0).batch.query_x[3]

    @register_predictor("test-flaky")
    class Flaky(Predictor):
        family = "reference"

        def predict(self, batch):
            if any(np.array_equal(q, third) for q in batch.query_x):
                raise RuntimeError("boom on episode 3")
            return np.zeros(batch.query_x.shape[:2])

    cfg = small_cfg(["test-flaky", "ridge"])
    cfg["suites"][0]["splits"] = ["novel"]
    manifest = run(cfg, tmp_path / "r", progress=False)
    df = pd.read_csv(tmp_path / "r" / "results.csv", keep_default_na=False)
    flaky = df[df.predictor == "test-flaky"]
    errors = flaky[flaky.status == "error"]
    assert set(errors.task_id) == {"novel-3"}
    assert "boom" in errors.error.iloc[0]
    assert (flaky[flaky.status == "ok"].shape[0] == len(flaky) - len(errors))
    assert (df[df.predictor == "ridge"].status == "ok").all()
    assert manifest["rows"]["error"] == len(errors)


def test_unlimited_pool_skips_templates_as_not_applicable(tmp_path):
    cfg = small_cfg(["template-dmmse", "ridge"])
    cfg["suites"][0]["params"]["pool_size"] = "unlimited"
    run(cfg, tmp_path / "u", progress=False)
    df = pd.read_csv(tmp_path / "u" / "results.csv", keep_default_na=False)
    t = df[df.predictor == "template-dmmse"]
    assert (t.status == "skipped").all() and "unlimited" in t.error.iloc[0]


def test_resume_after_interruption_gives_identical_results(tmp_path):
    cfg = small_cfg(["ridge", "template-dmmse", "lookup"])
    full = run(cfg, tmp_path / "full", progress=False)
    assert full["cells"]["missing"] == 0

    class Interrupting:
        """Runs a few cells, then stops as a Ctrl-C would."""

        description = "interrupting"
        work = None  # the runner sets its work function here

        def run(self, cells, out):
            from benchmark.executors import SerialExecutor

            for i, item in enumerate(SerialExecutor(work=self.work).run(cells, out)):
                if i == 7:
                    raise KeyboardInterrupt
                yield item

        def close(self):
            pass

    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "part", progress=False, executor=Interrupting())
    done = len(list((tmp_path / "part" / "cells").glob("*.csv")))
    assert 0 < done < full["cells"]["total"]
    again = run(cfg, tmp_path / "part", progress=False)
    assert again["cells"]["run_now"] == full["cells"]["total"] - done
    a = pd.read_csv(tmp_path / "full" / "results.csv").drop(columns=["fit_seconds", "predict_seconds"])
    b = pd.read_csv(tmp_path / "part" / "results.csv").drop(columns=["fit_seconds", "predict_seconds"])
    pd.testing.assert_frame_equal(a, b)


def test_results_have_the_promised_columns_and_seeds(tmp_path):
    run(small_cfg(["ridge"]), tmp_path / "c", progress=False)
    df = pd.read_csv(tmp_path / "c" / "results.csv")
    for col in ("suite", "split", "predictor", "family", "shots", "task_id", "seed", "metric", "score"):
        assert col in df.columns
    assert set(df.seed) == {0}
    assert set(df.pool_seed) == {0}
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert m["seeds"] == [0] and "torch" in m["versions"] and m["contamination_audit"]


# -- bad input ------------------------------------------------------------------------------
def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="known predictors: .*ridge"):
        get_predictor("ridgee")
    with pytest.raises(KeyError, match="known suites: .*linear-regression"):
        get_suite("linear-regresion")


@pytest.mark.parametrize("params, match", [
    ({"d": 0}, "d must be >= 1"),
    ({"noise": -1.0}, "noise"),
    ({"pool_size": 0}, "pool_size"),
    ({"pool_size": "many"}, "pool_size"),
    ({"dd": 3}, "unknown parameter"),
])
def test_out_of_range_parameters_fail_early(params, match):
    with pytest.raises(ValueError, match=match):
        LinearRegression(**params)


def test_shots_above_maximum_fail_before_any_work(tmp_path):
    cfg = small_cfg(["ridge"])
    cfg["suites"][0]["shots"] = [0, 99]
    with pytest.raises(ValueError, match="shots \\[99\\] outside 0..8"):
        plan(cfg)


def test_malformed_config_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\nepisodes = 10\nepisdoes = 3\n[[suites]]\nname = "linear-regression"\n')
    with pytest.raises(ConfigError, match=r"bad.toml.*episdoes"):
        load_config(bad)
    bad.write_text('[run]\nepisodes = "ten"\n[[suites]]\nname = "linear-regression"\n')
    with pytest.raises(ConfigError, match=r"bad.toml.*run.episodes"):
        load_config(bad)
    bad.write_text("[run\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_list_and_run(tmp_path, capsys):
    from benchmark.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "linear-regression" in out and "template-dmmse" in out
    rc = main(["run", "--suite", "linear-regression", "--predictors", "ridge,zero", "--shots", "0,4",
               "--episodes", "5", "--param", "d=3", "--param", "max_shots=4", "--param", "pool_size=4",
               "--out", str(tmp_path / "cli"), "--quiet", "--no-report"])
    assert rc == 0
    df = pd.read_csv(tmp_path / "cli" / "results.csv")
    assert set(df.predictor) == {"ridge", "zero"} and set(df.shots) == {0, 4}
    assert main(["run", "--suite", "nope", "--predictors", "ridge", "--out", str(tmp_path / "x")]) == 2
    assert "known suites" in capsys.readouterr().err


def test_batch_arrays_do_not_share_memory_with_targets(small_lr):
    ev = small_lr.episodes("novel", 4, 5, seed=0)
    for arr in (ev.batch.support_x, ev.batch.support_y, ev.batch.query_x):
        assert arr.base is None or not np.shares_memory(arr, ev.targets)
        assert arr.base is None


def test_a_broken_plugin_is_named_with_its_load_error(monkeypatch):
    from benchmark import registry

    registry.list_predictors()  # load everything first
    monkeypatch.setitem(registry._load_errors, "triadbench.predictors:broken-plugin",
                        "ImportError: No module named 'missing_dep'")
    with pytest.raises(KeyError, match="broken-plugin.*plugin that failed to load.*missing_dep"):
        get_predictor("broken-plugin")


def test_unknown_predictor_in_a_config_names_the_file(tmp_path):
    cfg_file = tmp_path / "mine.toml"
    cfg_file.write_text('[[suites]]\nname = "linear-regression"\npredictors = ["ridge", "ridgee"]\n')
    with pytest.raises(KeyError, match=r"mine.toml: unknown predictor 'ridgee'"):
        plan(load_config(cfg_file))


def test_out_of_range_value_in_a_config_names_the_file(tmp_path):
    cfg_file = tmp_path / "range.toml"
    cfg_file.write_text('[[suites]]\nname = "linear-regression"\npredictors = ["ridge"]\n'
                        '[suites.params]\npool_size = "many"\n')
    with pytest.raises(ValueError, match=r"range.toml: pool_size"):
        plan(load_config(cfg_file))
