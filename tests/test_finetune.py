"""Fine-tuning predictors: convergence to least squares, batching, and an untouched checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.finetune import (FinetuneLinear, FinetuneMLP, TTTTransformer, icl_head, icl_trunk,
                                loo_sequences, train_mlp)
from baselines.icl_transformer import ICLTransformerPredictor, model_predict, query_sequences
from baselines.reference import OLS
from benchmark import get_suite


@pytest.fixture(scope="module")
def tiny_suite():
    return get_suite("linear-regression", d=4, max_shots=8, pool_size=8)


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_suite, tmp_path_factory):
    from baselines.icl_train import pretrain

    out = tmp_path_factory.mktemp("ttt") / "ckpt"
    pretrain(tiny_suite, out, steps=50, width=16, layers=1, heads=2, eval_episodes=50,
             log_every=1000)
    return str(out)


@pytest.mark.parametrize("shots", [2, 9])
def test_linear_gd_reaches_min_norm_least_squares(shots):
    # Below d the demonstrations are interpolated in many ways: zero-init GD picks the min-norm one.
    ev = get_suite("linear-regression", d=4, max_shots=12, noise=0.0).episodes("novel", shots, 16, seed=3)
    gd = FinetuneLinear(steps=3000, lr=1.5).predict(ev.batch)
    np.testing.assert_allclose(gd, OLS().predict(ev.batch), atol=1e-6)


def test_linear_early_stopping_differs_from_ols_and_zero_shots_predicts_zero():
    ev = get_suite("linear-regression").episodes("novel", 8, 8, seed=0)
    few = FinetuneLinear(steps=2, lr=1.0).predict(ev.batch)
    assert np.abs(few - OLS().predict(ev.batch)).max() > 1e-2
    ev0 = get_suite("linear-regression").episodes("novel", 0, 3, seed=0)
    assert np.all(FinetuneLinear(steps=5, lr=1.0).predict(ev0.batch) == 0)


def test_linear_auto_tuning_uses_pool_and_records_choice(tiny_suite):
    f = FinetuneLinear().fit(tiny_suite.pool())
    assert f.steps_ in FinetuneLinear.steps_grid and f.lr_ in FinetuneLinear.lr_grid
    assert f.chosen_params_ == {"steps": f.steps_, "lr": f.lr_, "tuned": True}
    assert len(f.tuning_table_) == len(FinetuneLinear.steps_grid) * len(FinetuneLinear.lr_grid)
    fixed = FinetuneLinear(steps=7, lr=0.5).fit(tiny_suite.pool())
    assert fixed.chosen_params_["tuned"] is False and fixed.steps_ == 7


def test_mlp_batched_equals_looped_and_is_position_independent():
    ev = get_suite("linear-regression").episodes("novel", 6, 12, seed=1)
    b = ev.batch
    lr = np.full(len(b), 1e-2)
    batched = train_mlp(b.support_x, b.support_y, b.query_x, lr, [30])[30]
    looped = np.concatenate([train_mlp(b.support_x[i:i + 1], b.support_y[i:i + 1],
                                       b.query_x[i:i + 1], lr[:1], [30])[30] for i in range(len(b))])
    np.testing.assert_allclose(batched, looped, rtol=1e-4, atol=1e-5)  # float32
    p = FinetuneMLP(steps=30, lr=1e-2)
    np.testing.assert_allclose(p.predict(b[[5, 2]]), batched[[5, 2]], rtol=1e-4, atol=1e-5)


def test_mlp_learns_from_demonstrations():
    ev = get_suite("linear-regression", noise=0.0).episodes("novel", 16, 64, seed=2)
    untrained = FinetuneMLP(steps=0, lr=1e-2).predict(ev.batch)
    trained = FinetuneMLP(steps=150, lr=1e-2).predict(ev.batch)
    err = lambda p: ((p - ev.targets) ** 2).mean()  # noqa: E731
    assert np.all(untrained == 0)
    assert err(trained) < 0.5 * err(untrained)


def test_predict_before_fit_with_auto_params_is_a_clear_error():
    ev = get_suite("linear-regression").episodes("novel", 4, 2, seed=0)
    with pytest.raises(ValueError, match="fit"):
        FinetuneMLP().predict(ev.batch)


def test_stacked_forward_matches_the_module(tiny_checkpoint, tiny_suite):
    p = ICLTransformerPredictor(checkpoint=tiny_checkpoint).fit(tiny_suite.pool())
    ev = tiny_suite.episodes("novel", 5, 3, seed=0)
    x, y = query_sequences(ev.batch)
    P = {n: t.detach() for n, t in p.model_.named_parameters()}
    out = icl_head(P, icl_trunk(p.model_.cfg, P, torch.tensor(x[None], dtype=torch.float32),
                                torch.tensor(y[None], dtype=torch.float32)))[0, :, -1]
    np.testing.assert_allclose(out.double().numpy().reshape(3, -1), model_predict(p.model_, ev.batch),
                               atol=1e-5)


def test_loo_sequences_hold_out_each_demonstration_last():
    x = np.arange(3, dtype=float).reshape(1, 3, 1)
    lx, ly = loo_sequences(x, x[..., 0] * 10)
    assert lx[0, :, :, 0].tolist() == [[1, 2, 0], [0, 2, 1], [0, 1, 2]]
    assert ly[0, :, -1].tolist() == [0, 10, 20]


@pytest.mark.parametrize("trainable", ["head", "all"])
def test_ttt_leaves_checkpoint_untouched_and_differs_from_frozen(tiny_checkpoint, tiny_suite, trainable):
    pool = tiny_suite.pool()
    ttt = TTTTransformer(checkpoint=tiny_checkpoint, steps=3, lr=0.05, trainable=trainable).fit(pool)
    before = {n: t.clone() for n, t in ttt.model_.state_dict().items()}
    ev = tiny_suite.episodes("novel", 6, 6, seed=0)
    out = ttt.predict(ev.batch)
    for n, t in ttt.model_.state_dict().items():
        assert torch.equal(t, before[n]), n
    frozen = ICLTransformerPredictor(checkpoint=tiny_checkpoint).fit(pool).predict(ev.batch)
    assert np.abs(out - frozen).max() > 1e-4
    np.testing.assert_allclose(ttt.predict(ev.batch[[4]]), out[[4]], atol=1e-5)  # float32
    np.testing.assert_allclose(ttt.predict(ev.batch), out, atol=0)  # no state kept between calls


def test_ttt_without_training_is_the_frozen_model(tiny_checkpoint, tiny_suite):
    pool = tiny_suite.pool()
    frozen = ICLTransformerPredictor(checkpoint=tiny_checkpoint).fit(pool)
    ttt = TTTTransformer(checkpoint=tiny_checkpoint, steps=3, lr=0.05).fit(pool)
    for shots in (0, 1):
        ev = tiny_suite.episodes("novel", shots, 4, seed=0)
        np.testing.assert_array_equal(ttt.predict(ev.batch), frozen.predict(ev.batch))
    ev = tiny_suite.episodes("novel", 5, 4, seed=0)
    still = TTTTransformer(checkpoint=tiny_checkpoint, steps=0, lr=0.05).fit(pool)
    np.testing.assert_array_equal(still.predict(ev.batch), frozen.predict(ev.batch))


def test_ttt_auto_tuning_and_bad_trainable(tiny_checkpoint, tiny_suite):
    pool = tiny_suite.pool()
    ttt = TTTTransformer(checkpoint=tiny_checkpoint, tune_episodes=8).fit(pool)
    assert ttt.steps_ in TTTTransformer.steps_grid and ttt.lr_ in TTTTransformer.lr_grid
    with pytest.raises(ValueError, match="trainable"):
        TTTTransformer(checkpoint=tiny_checkpoint, trainable="lora").fit(pool)
