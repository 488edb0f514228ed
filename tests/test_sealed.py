"""The sealed view: predictors that try to reach the answers through the interface gain nothing.

Each adversary below exploits one channel that was open before the predictor view was sealed
(issue 12): (a) task ids naming the task, (b) the pool's suite name, parameters and a guessed
seed to regenerate the scored episodes, (c) ARC test pairs of seen-task tasks in the pool,
(d) answer candidates derived from held-out facts. Each runs through the real runner path and
scores no better than a predictor that answers nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.predictor import Predictor
from benchmark.registry import register_predictor
from benchmark.runner import run
from benchmark.seeding import SECRET_FILE
from benchmark.suites.strings import apply_rule


def _cfg(suite: str, params: dict, predictors: list[str], splits: list[str], shots: list[int],
         episodes: int = 12, sealed: bool = False) -> dict:
    return {"out": None, "source": "test",
            "run": {"seeds": [0], "episodes": episodes, "batch_size": 64, "executor": "serial",
                    "workers": None, "scheduler": None, "timeout": None, "sealed": sealed},
            "suites": [{"name": suite, "params": dict(params), "splits": splits, "shots": shots,
                        "predictors": [{"name": p, "params": {}} for p in predictors],
                        "episodes": None}]}


def _mean_scores(out) -> pd.Series:
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"][["predictor", "error"]].head()
    return df.groupby("predictor")["score"].mean()


# -- adversaries ----------------------------------------------------------------------------------
@register_predictor("test-nothing")
class Nothing(Predictor):
    """The zero predictor for every modality: no answer at all."""

    family = "reference"
    modalities = ("vector", "string", "grid")

    def predict(self, batch):
        if batch.modality == "vector":
            return np.zeros(batch.query_x.shape[:2])
        if batch.modality == "string":
            return [["" for _ in q] for q in batch.query_x]
        return [[[] for _ in q] for q in batch.query_x]


@register_predictor("test-id-reader")
class IdReader(Nothing):
    """(a) Reads the rule out of a strings task id such as ``familiar-rules/caesar-3``."""

    def predict(self, batch):
        out = super().predict(batch)
        for i, tid in enumerate(batch.task_ids):
            if str(tid).startswith("familiar-rules/"):
                rule = str(tid).split("/", 1)[1]
                out[i] = [apply_rule(rule, q) or "" for q in batch.query_x[i]]
        return out


@register_predictor("test-regenerator")
class Regenerator(Nothing):
    """(b) Rebuilds the suite from ``pool.suite_name``/``pool.params`` and regenerates the scored
    episodes with the run seed (or guessed seeds), then answers with their targets."""

    modalities = ("vector",)

    def fit(self, pool):
        from benchmark.registry import suite_class

        self.suite_ = suite_class(pool.suite_name)(**dict(pool.params))
        seed = getattr(pool, "run_seed", None)
        self.seeds_ = [seed] if seed is not None else list(range(4))
        return self

    def predict(self, batch):
        out = super().predict(batch)
        for seed in self.seeds_:
            for split in ("novel", "ood", "seen-task", "memorized"):
                ev = self.suite_.episodes(split, batch.shots, 64, seed)
                index = {ev.batch.query_x[j].tobytes(): ev.targets[j] for j in range(len(ev))}
                for i in range(len(batch)):
                    hit = index.get(np.asarray(batch.query_x[i]).tobytes())
                    if hit is not None:
                        out[i] = hit
        return out


@register_predictor("test-arc-pool-peeker")
class ArcPoolPeeker(Nothing):
    """(c) Finds the episode's task among ``pool.tasks`` by its demonstrations and returns the
    task's test outputs (withheld from the offline phase for seen-task tasks)."""

    modalities = ("grid",)

    def fit(self, pool):
        self.tasks_ = dict(getattr(pool, "tasks", {}))
        return self

    def predict(self, batch):
        out = super().predict(batch)
        for i, (sx, qx) in enumerate(zip(batch.support_x, batch.query_x)):
            for t in self.tasks_.values():
                tests = list(getattr(t, "test", ()))
                if len(tests) != len(qx):
                    continue
                if all(np.array_equal(a, x) for (a, _), x in zip(tests, qx)):
                    out[i] = [[np.asarray(y).tolist()] for _, y in tests]
                    break
        return out


@register_predictor("test-candidate-picker")
class CandidatePicker(Nothing):
    """(d) Answers a knowledge query from the answer candidates handed over in ``meta``: the
    candidate that starts like the query (``He`` -> ``helium``) or the first one."""

    modalities = ("string",)

    def predict(self, batch):
        out = super().predict(batch)
        meta = dict(batch.meta)
        table = meta.get("candidates", {})
        spaces = meta.get("answer_space")
        for i, qs in enumerate(batch.query_x):
            cands = table.get(batch.task_ids[i]) if isinstance(table, dict) else None
            if cands is None and spaces is not None:
                cands = spaces[i]
            if not cands:
                continue
            answers = []
            for q in qs:
                starts = [c for c in cands if str(c).lower().startswith(str(q).lower())]
                answers.append(starts[0] if starts else cands[0])
            out[i] = answers
        return out


# -- the channels, through the runner ---------------------------------------------------------------
SMALL_LR = {"d": 4, "max_shots": 4, "pool_size": 8, "n_prompts": 16}


@pytest.mark.parametrize("sealed", [False, True])
def test_a_task_ids_name_nothing(tmp_path, sealed):
    cfg = _cfg("strings", {"kinds": ["rules"], "max_shots": 2}, ["test-id-reader", "test-nothing"],
               ["novel", "seen-task", "memorized"], [0, 2], sealed=sealed)
    run(cfg, tmp_path, progress=False)
    means = _mean_scores(tmp_path)
    assert means["test-id-reader"] == means["test-nothing"] == 0.0


def test_b_regenerating_episodes_gains_nothing_in_a_sealed_run(tmp_path):
    # (memorized episodes are the pool's own offline prompts: regenerating them is no leak)
    cfg = _cfg("linear-regression", SMALL_LR, ["test-regenerator", "test-nothing"],
               ["novel", "ood", "novel-orthogonal", "seen-task"], [0, 2], sealed=True)
    run(cfg, tmp_path, progress=False)
    df = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    a = df[df.predictor == "test-regenerator"].sort_values(["split", "shots", "episode_id"])
    z = df[df.predictor == "test-nothing"].sort_values(["split", "shots", "episode_id"])
    # identical answers episode by episode: the regenerated episodes matched none of the scored ones
    np.testing.assert_array_equal(a["score"].to_numpy(), z["score"].to_numpy())
    assert (a["score"] > 0).all()


def test_b_the_pool_hands_over_no_run_seed():
    from benchmark import get_suite
    from benchmark.runner import Cell, canonical, fitted_for

    cell = Cell("linear-regression", canonical(get_suite("linear-regression", **SMALL_LR).params),
                "test-regenerator", "{}", "test-regenerator", "novel", 2, 12345, 4)
    pred, _, err = fitted_for(cell)
    assert err is None and pred.seeds_ == [0, 1, 2, 3]


def test_c_arc_pool_holds_no_withheld_test_pairs(tmp_path):
    params = {"max_task_cells": 150}
    cfg = _cfg("arc", params, ["test-arc-pool-peeker", "test-nothing"], ["seen-task", "novel"], [1],
               episodes=6)
    run(cfg, tmp_path, progress=False)
    means = _mean_scores(tmp_path)
    assert means["test-arc-pool-peeker"] == means["test-nothing"] == 0.0


def test_c_arc_pool_attributes_never_reach_a_seen_task_target():
    """No attribute of the pool (walked to depth 6) holds a seen-task test output."""
    from benchmark import get_suite
    from benchmark.testing import reachable_arrays

    s = get_suite("arc")
    pool = s.pool()
    ev = s.episodes("seen-task", 1, 400, seed=0)
    targets = {np.asarray(y).tobytes() + str(np.shape(y)).encode() for ys in ev.targets for y in ys}
    # train outputs may repeat a test output by chance: only count outputs no train pair shows
    shown = {np.asarray(y).tobytes() + str(np.shape(y)).encode()
             for t in s.training().values() for _, y in t.train}
    secret = targets - shown
    assert len(secret) > 50
    found = {a.tobytes() + str(a.shape).encode() for a in reachable_arrays(pool)}
    assert not (secret & found)


def test_d_knowledge_candidates_are_not_handed_over(tmp_path):
    cfg = _cfg("strings", {"kinds": ["knowledge"], "max_shots": 2}, ["test-candidate-picker", "test-nothing"],
               ["novel"], [0, 2], episodes=30)
    run(cfg, tmp_path, progress=False)
    means = _mean_scores(tmp_path)
    assert means["test-candidate-picker"] == means["test-nothing"] == 0.0


# -- the evaluation key -----------------------------------------------------------------------------
def test_sealed_run_publishes_its_key_after_scoring_and_reproduces(tmp_path):
    cfg = _cfg("linear-regression", SMALL_LR, ["ridge"], ["novel"], [2], episodes=6, sealed=True)
    m1 = run(cfg, tmp_path / "a", progress=False)
    secret = (tmp_path / "a" / SECRET_FILE).read_text().strip()
    assert m1["evaluation"]["sealed"] is True and m1["evaluation"]["secret"] == secret
    r1 = pd.read_csv(tmp_path / "a" / "results.csv")
    # a second sealed run draws a different key: different episodes
    run(cfg, tmp_path / "b", progress=False)
    r2 = pd.read_csv(tmp_path / "b" / "results.csv")
    assert not np.allclose(r1["score"], r2["score"])
    # the published key reproduces the first run's numbers
    from benchmark import get_predictor, get_suite
    from benchmark.seeding import eval_key

    suite = get_suite("linear-regression", **SMALL_LR)
    ev = suite.episodes("novel", 2, 6, eval_key(0, m1["evaluation"]["secret"]))
    ridge = get_predictor("ridge").fit(suite.pool())
    np.testing.assert_allclose(suite.score(ev, ridge.predict(ev.batch)), r1["score"], rtol=1e-9)
    # a resumed run reuses the secret from the private file
    for cell_file in (tmp_path / "a" / "cells").iterdir():  # recompute every cell
        cell_file.unlink()
    m3 = run(cfg, tmp_path / "a", progress=False)
    assert m3["evaluation"]["secret"] == secret
    np.testing.assert_allclose(pd.read_csv(tmp_path / "a" / "results.csv")["score"], r1["score"])
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["evaluation"]["secret"] == secret


def test_b_the_regenerator_is_exact_when_handed_the_key():
    """Guard against a vacuous test: with the evaluation key the regenerator answers exactly."""
    from benchmark import get_suite

    suite = get_suite("linear-regression", **SMALL_LR)
    ev = suite.episodes("novel", 2, 5, seed=7)
    reg = Regenerator().fit(suite.pool())
    reg.seeds_ = [7]
    np.testing.assert_allclose(reg.predict(ev.view()), ev.targets)


def test_c_pool_hashes_do_not_fingerprint_withheld_test_pairs():
    from benchmark import get_suite

    s = get_suite("arc")
    pool = s.pool()
    full = dict(zip(pool.task_ids, s.pool_fingerprints(pool)))
    shown = dict(zip(pool.task_ids, pool.task_hashes))
    mem = set(pool.memorized_ids)
    assert all(shown[t] == full[t] for t in mem)
    assert all(shown[t] != full[t] for t in pool.task_ids if t not in mem)
    assert all(t.test == () for tid, t in pool.tasks.items() if tid not in mem)


# -- the predictor's view -------------------------------------------------------------------------
def test_predict_sees_opaque_ids_no_split_and_only_the_answer_space(tmp_path):
    seen = []

    @register_predictor("test-recorder")
    class Recorder(Nothing):
        modalities = ("string",)

        def predict(self, batch):
            seen.append((list(batch.task_ids), batch.split, dict(batch.meta)))
            return super().predict(batch)

    cfg = _cfg("strings", {"max_shots": 2}, ["test-recorder"], ["novel", "memorized"], [0, 2], episodes=6)
    run(cfg, tmp_path, progress=False)
    df = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert {"familiar-rules", "constructed", "knowledge", "retrieval"} <= {t.split("/")[0] for t in df.task_id}  # harness side
    ids = [i for s in seen for i in s[0]]
    assert len(set(ids)) == len(ids)  # fresh per call
    assert all(len(i) == 16 and "/" not in i for i in ids)
    assert {s[1] for s in seen} == {"sealed"}
    for _, _, meta in seen:
        assert set(meta) <= {"answer_space"}
        spaces = meta.get("answer_space")
        assert spaces is None or all(a is None or "capital" not in a for a in spaces)


def test_pool_is_read_only_and_names_no_seed_or_hidden_parameter():
    from benchmark import get_suite
    from benchmark.testing import reachable_arrays

    for name, params in (("linear-regression", SMALL_LR), ("strings", {}), ("arc", {})):
        s = get_suite(name, **params)
        pool = s.pool()
        assert not any(a.flags.writeable for a in reachable_arrays(pool)), name
        assert not hasattr(pool, "run_seed")
        with pytest.raises(TypeError, match="read-only"):
            pool.params["d"] = 3
    assert "path" not in get_suite("arc").pool().params


@pytest.mark.parametrize("name, params", [("linear-regression", SMALL_LR), ("strings", {"max_shots": 4}),
                                          ("arc", {"max_task_cells": 150})])
def test_episode_i_is_the_same_whatever_the_episode_count(name, params):
    from benchmark import get_suite
    from benchmark.testing import _same_evalset

    s = get_suite(name, **params)
    for split in s.splits:
        for shots in sorted({0, s.max_shots}):
            few = s.episodes(split, shots, 3, 11)
            many = s.episodes(split, shots, 9, 11)
            assert len(few) == 3 and _same_evalset(few, many.subset(range(3))) is None, (split, shots)


# -- failures are error rows, and the audit runs where scored --------------------------------------
def test_nan_inf_and_wrong_shape_predictions_are_error_rows(tmp_path):
    @register_predictor("test-bad-output")
    class BadOutput(Nothing):
        modalities = ("vector",)

        def predict(self, batch):
            out = np.zeros(batch.query_x.shape[:2])
            first = batch.query_x[:, 0, 0]
            out[first > 0.5, 0] = np.nan
            out[first < -0.5, 1] = np.inf
            if batch.shots == 2:
                return out[:, :1]  # wrong shape
            return out

    cfg = _cfg("linear-regression", SMALL_LR, ["test-bad-output"], ["novel"], [0, 2], episodes=20)
    manifest = run(cfg, tmp_path, progress=False)
    df = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    k0, k2 = df[df.shots == 0], df[df.shots == 2]
    bad = k0[k0.status == "error"]
    assert len(bad) > 0 and (k0.status == "ok").sum() > 0
    assert bad.error.str.contains("not finite").all() and (bad.score == "").all()
    assert (k2.status == "error").all() and k2.error.str.contains("shape").all()
    assert manifest["rows"]["error"] == len(bad) + len(k2)


def test_the_audit_runs_on_the_scored_episodes_and_the_manifest_lists_exclusions(tmp_path):
    cfg = _cfg("arc", {"max_task_cells": 150}, ["test-nothing"], ["novel", "seen-task"], [1], episodes=5)
    manifest = run(cfg, tmp_path, progress=False)
    df = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert df[df.split == "novel"].audit.str.startswith("clean: 5 episode(s)").all()
    assert (df[df.split == "seen-task"].audit == "not held out").all()
    assert manifest["audit_where_scored"]["episodes_audited"] == 5
    excluded = {e["task_id"]: e["reason"] for e in manifest["excluded_tasks"]}
    assert "40853293" in excluded["070dd51e"]


def test_the_secret_is_withheld_while_cells_are_missing(tmp_path):
    from benchmark.runner import evaluation_record
    from benchmark.seeding import run_secret

    secret = run_secret(tmp_path)
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o077 == 0  # private to the owner
    assert run_secret(tmp_path) == secret  # a resume reads it back
    assert evaluation_record(secret, complete=False)["secret"] is None
    assert evaluation_record(secret, complete=True)["secret"] == secret
    assert evaluation_record("", complete=True) == {"sealed": False, "key": "the run seed"}
    (tmp_path / SECRET_FILE).write_text("not hex\n")
    with pytest.raises(ValueError, match=SECRET_FILE):
        run_secret(tmp_path)
