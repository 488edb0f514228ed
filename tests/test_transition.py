"""Transition controls (issue 14): equal-budget multi-seed checkpoints, their training optima and
the transformer's paired distances to template-mix, dMMSE and ridge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines.icl_train import pretrain, training_optima
from baselines.icl_transformer import CheckpointError, ICLTransformerPredictor, default_checkpoint
from benchmark import get_suite
from benchmark.predictor import NotApplicable
from benchmark.transition import (card_losses, distance_summary, episode_distances,
                                  transition_checkpoints)

PARAMS = {"d": 3, "max_shots": 5, "pool_size": 4, "n_prompts": 16}
TINY = {"width": 16, "layers": 1, "heads": 2, "eval_episodes": 20, "log_every": 10,
        "optima_sequences": 500}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data dir with tiny equal-budget checkpoints at pool seeds 1 and 2."""
    root = tmp_path_factory.mktemp("data")
    for m in (2, 4):
        for s in (1, 2):
            out = root / "checkpoints" / "linear-regression" / "transition" / f"pool-{m}-seed-{s}"
            pretrain(get_suite("linear-regression", **{**PARAMS, "pool_size": m}, pool_seed=s), out,
                     steps=20, seed=s, **TINY)
    return root


def test_transition_set_selects_the_seeds_checkpoint(data, monkeypatch):
    monkeypatch.setenv("TRIADBENCH_DATA", str(data))
    suite = get_suite("linear-regression", **PARAMS, pool_seed=2)
    assert default_checkpoint(suite.params, "transition").name == "pool-4-seed-2"
    p = ICLTransformerPredictor(checkpoint_set="transition").fit(suite.pool())
    assert p.card_["suite_params"]["pool_seed"] == 2 and p.card_["seed"] == 2
    with pytest.raises(CheckpointError, match="pool_seed"):  # seed 1's model on pool seed 2
        ICLTransformerPredictor(checkpoint_set="transition", train_seed=1).fit(suite.pool())
    with pytest.raises(NotApplicable, match="transition"):
        ICLTransformerPredictor(checkpoint_set="transition").fit(
            get_suite("linear-regression", **PARAMS, pool_seed=7).pool())
    with pytest.raises(ValueError, match="checkpoint_set"):
        ICLTransformerPredictor(checkpoint_set="other").fit(suite.pool())


def test_cards_record_training_loss_beside_the_optima(data, monkeypatch):
    monkeypatch.setenv("TRIADBENCH_DATA", str(data))
    paths = transition_checkpoints()
    assert [p.name for p in paths] == ["pool-2-seed-1", "pool-2-seed-2", "pool-4-seed-1", "pool-4-seed-2"]
    card = json.loads((paths[2] / "card.json").read_text())
    losses = card["training_losses"]
    assert losses["sequences"] == 500 and losses["final_running_loss"] > 0
    # on its own training distribution the posterior over the pool beats ridge
    assert losses["dmmse"] < losses["ridge"]
    df = card_losses(paths, add=False)
    assert list(df["pool_seed"]) == [1, 2, 1, 2] and (df["dmmse_optimum"] < df["ridge_optimum"]).all()


def test_training_optima_known_values():
    # one pool task: dMMSE knows it and is left with the noise alone (after the first point's
    # posterior is already a point mass); ridge pays for learning it
    suite = get_suite("linear-regression", d=3, max_shots=5, pool_size=1, noise=0.25)
    o = training_optima(None, suite, n=4000)
    assert o["model"] is None
    assert o["dmmse"] == pytest.approx(0.25, rel=0.08)
    assert o["ridge"] > 1.0
    # an unlimited pool has no dMMSE; ridge at position 0 predicts 0: loss d + noise there
    u = training_optima(None, get_suite("linear-regression", d=3, max_shots=0, pool_size="unlimited"), n=4000)
    assert u["dmmse"] is None and u["ridge"] == pytest.approx(3.25, rel=0.08)


def test_paired_distances(data, monkeypatch):
    monkeypatch.setenv("TRIADBENCH_DATA", str(data))
    per_ep = episode_distances(4, 1, episodes=30, shots=range(4), suite_params={
        k: v for k, v in PARAMS.items() if k != "pool_size"})
    assert len(per_ep) == 30 and (per_ep.filter(like="distance_to_") >= 0).all().all()
    summ = distance_summary(per_ep)
    r = summ.iloc[0]
    diff = per_ep["distance_to_template-mix"] - per_ep["distance_to_ridge"]
    assert r["template-mix_minus_ridge"] == pytest.approx(diff.mean())
    # the paired interval is the one of the per-episode differences
    assert r["template-mix_minus_ridge_ci"] == pytest.approx(1.96 * diff.std(ddof=1) / np.sqrt(30), rel=1e-3)


CONFIG = """
out = "unused"
[run]
seeds = [0]
episodes = 6
[[suites]]
name = "linear-regression"
shots = "0..5"
splits = ["seen-task", "novel"]
predictors = [{name = "icl-transformer", checkpoint_set = "transition", label = "icl-transformer-eq"},
              "template-mix", "template-dmmse", "ridge"]
[suites.params]
d = 3
max_shots = 5
n_prompts = 16
pool_size = [2, 4]
pool_seed = [1, 2]
"""


@pytest.mark.slow
def test_report_figures_show_each_seed(data, monkeypatch, tmp_path):
    from benchmark import figures as F
    from benchmark import tables as T
    from benchmark.cli import main

    monkeypatch.setenv("TRIADBENCH_DATA", str(data))
    cfg = tmp_path / "t.toml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(run), "--no-report", "--quiet"]) == 0
    df, _ = T.load_runs([run])
    trans = T.transition(df, "linear-regression")
    eq = trans[(trans["predictor"] == "icl-transformer-eq") & trans["measure"].str.startswith("mean")]
    assert sorted(eq.groupby("pool_size")["pool_seed"].nunique()) == [2, 2]  # a point per seed
    dist = T.prediction_distance(df, "linear-regression")
    assert set(dist["subject"]) == {"icl-transformer-eq"}
    assert set(dist["to"]) == {"template-mix", "template-dmmse", "ridge"}
    assert set(dist["pool_seed"]) == {"1", "2"} or set(dist["pool_seed"]) == {1, 2}
    # Raventós et al.'s shots 0..max_shots-1: one episode's distance is its mean over shots 0..4
    per = T.prediction_distance(df, "linear-regression", per_episode=True)
    ok = df[(df["status"] == "ok") & (df["split"] == "novel")]
    a = ok[ok["predictor"] == "icl-transformer-eq"]
    one = a.iloc[0]
    same = a[(a["ep"] == one["ep"])]
    assert sorted(same["shots"]) == [0, 1, 2, 3, 4, 5]
    b = ok[(ok["predictor"] == "ridge") & (ok["ep"] == one["ep"])].set_index("shots")["prediction"]
    want = np.mean([np.mean((np.array(json.loads(r["prediction"])) - np.array(json.loads(b[r["shots"]]))) ** 2) / 3
                    for _, r in same.iterrows() if r["shots"] < 5])
    got = per[(per["ep"] == one["ep"]) & (per["to"] == "ridge")]["distance"]
    assert float(got.iloc[0]) == pytest.approx(want)
    f1 = F.transition(trans, "linear-regression", "mse/d", F.Styler(list(dict.fromkeys(df["predictor"]))),
                      tmp_path / "fig", "")
    f2 = F.distance(dist, "linear-regression", tmp_path / "fig", "")
    assert f1.png.exists() and f2.png.exists() and "each seed" in f1.caption
    assert "Equal-budget checkpoints" in f2.caption


def test_default_set_without_a_checkpoint_for_the_pool_seed_is_not_applicable(data, monkeypatch, tmp_path):
    import shutil

    root = tmp_path / "d"
    shutil.copytree(data / "checkpoints" / "linear-regression" / "transition" / "pool-4-seed-1",
                    root / "checkpoints" / "linear-regression" / "pool-4")
    monkeypatch.setenv("TRIADBENCH_DATA", str(root))
    other_seed = get_suite("linear-regression", **PARAMS, pool_seed=0).pool()
    with pytest.raises(NotApplicable, match="pool_seed"):
        ICLTransformerPredictor().fit(other_seed)
    ICLTransformerPredictor().fit(get_suite("linear-regression", **PARAMS, pool_seed=1).pool())
