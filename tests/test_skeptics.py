"""The skeptic baselines of issue 14: template mixing, algorithm selection, demo copying and
which novel string rules the template library reaches."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.algorithm_select import AlgorithmSelect
from baselines.strings_template import (DemoCopy, TemplateStrings, novel_rule_reachability,
                                        reachable, template_reachability)
from baselines.template_mix import TemplateMix, TemplateMixSpan, gaussian_posterior_mean
from baselines.template_regression import TemplateDMMSE
from benchmark import get_suite
from benchmark.predictor import NotApplicable
from benchmark.registry import predictor_class
from benchmark.suites.strings import NOVEL_RULES, apply_rule, task_kind


def _information_form_mean(W: np.ndarray, X: np.ndarray, y: np.ndarray, noise: float) -> np.ndarray:
    """Posterior mean of w = U z, z ~ N(0, diag(lam)) (the eigen-decomposition of WᵀW/M),
    in the precision form (diag(1/lam) + UᵀXᵀXU/σ²)⁻¹ UᵀXᵀy/σ², one episode at a time."""
    lam, U = np.linalg.eigh(W.T @ W / len(W))
    keep = lam > 1e-10 * lam.max()
    lam, U = lam[keep], U[:, keep]
    out = []
    for Xi, yi in zip(X, y):
        XU = Xi @ U
        prec = np.diag(1 / lam) + XU.T @ XU / noise
        out.append(U @ np.linalg.solve(prec, XU.T @ yi / noise))
    return np.array(out)


@pytest.mark.parametrize("pool_size", [4, 64])
def test_template_mix_is_the_gaussian_posterior_mean(pool_size):
    suite = get_suite("linear-regression", pool_size=pool_size)
    pool = suite.pool()
    ev = suite.episodes("novel", 6, 20, seed=3)
    got = TemplateMix().fit(pool).predict(ev.batch)
    w = _information_form_mean(pool.weights, ev.batch.support_x, ev.batch.support_y, 0.25)
    np.testing.assert_allclose(got, np.einsum("bqd,bd->bq", ev.batch.query_x, w), rtol=1e-7, atol=1e-9)


def test_template_mix_stays_in_the_span_of_a_small_pool():
    suite = get_suite("linear-regression", pool_size=3)
    pool = suite.pool()
    t = TemplateMix().fit(pool)
    ev = suite.episodes("novel", 16, 5, seed=0)
    # a query orthogonal to every pool task gets exactly zero
    _, _, vt = np.linalg.svd(pool.weights)
    q = np.broadcast_to(vt[-1], (5, 1, 8)).copy()
    from dataclasses import replace
    assert np.allclose(t.predict(replace(ev.batch, query_x=q)), 0.0, atol=1e-10)
    span = TemplateMixSpan().fit(pool)
    assert np.allclose(span.predict(replace(ev.batch, query_x=q)), 0.0, atol=1e-10)
    # with M >= d the span is everything, and the span variant is ridge with the pool's scale
    big = get_suite("linear-regression", pool_size=64)
    ev = big.episodes("novel", 4, 5, seed=0)
    assert np.abs(TemplateMixSpan().fit(big.pool()).predict(ev.batch)).max() > 0


def test_template_mix_needs_a_finite_pool():
    with pytest.raises(NotApplicable):
        TemplateMix().fit(get_suite("linear-regression", pool_size="unlimited").pool())
    with pytest.raises(ValueError, match="prior must be one of"):
        TemplateMix(prior="flat").fit(get_suite("linear-regression", pool_size=4).pool())


def test_skeptics_are_template_family():
    for name in ("template-mix", "template-mix-span", "algorithm-select", "demo-copy"):
        assert predictor_class(name).family == "template"


def _refit_loo(a: AlgorithmSelect, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-out by actually deleting each demonstration (no masking)."""
    k = X.shape[1]
    err = np.zeros((len(a.estimators_), len(X)))
    for i in range(k):
        rest = [j for j in range(k) if j != i]
        keep = np.ones(k - 1, dtype=bool)
        p = a._predict_all(X[:, rest], y[:, rest], keep, X[:, i : i + 1])[..., 0]
        err += (p - y[None, :, i]) ** 2
    return err / k


def test_algorithm_select_leave_one_out_matches_explicit_deletion():
    suite = get_suite("linear-regression", pool_size=16)
    a = AlgorithmSelect().fit(suite.pool())
    ols = a.estimators_.index("ols")
    for k in (1, 3, 9, 12, 16):
        ev = suite.episodes("novel", k, 7, seed=1)
        X, y = ev.batch.support_x, ev.batch.support_y
        got, want = a.loo_errors(X, y), _refit_loo(a, X, y)
        if k < 8 + 2:  # least squares is not eligible below d + 2 shots
            assert np.isinf(got[ols]).all()
            got, want = np.delete(got, ols, 0), np.delete(want, ols, 0)
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10)


def test_algorithm_select_defaults_and_choices():
    suite = get_suite("linear-regression", pool_size=16)
    pool = suite.pool()
    a = AlgorithmSelect().fit(pool)
    ev0 = suite.episodes("novel", 0, 6, seed=2)
    np.testing.assert_allclose(a.predict(ev0.batch), TemplateDMMSE().fit(pool).predict(ev0.batch))
    # on pool tasks with many demonstrations it does about as well as dMMSE, on novel ones
    # far better (it can pick ridge): selection among memorized estimators
    seen, novel = suite.episodes("seen-task", 16, 300, seed=2), suite.episodes("novel", 16, 300, seed=2)
    d = TemplateDMMSE().fit(pool)
    assert suite.score(novel, a.predict(novel.batch)).mean() < 0.5 * suite.score(novel, d.predict(novel.batch)).mean()
    assert suite.score(seen, a.predict(seen.batch)).mean() < 0.15
    with pytest.raises(ValueError, match="candidates"):
        AlgorithmSelect(candidates=["lasso"]).fit(pool)


def test_demo_copy_solves_retrieval_not_rules():
    suite = get_suite("strings", kinds=["retrieval", "rules"], n_prompts=1)
    ev = suite.episodes("novel", 8, 20, seed=0)
    scores = suite.score(ev, DemoCopy().predict(ev.batch))
    kinds = np.array([task_kind(t) for t in ev.batch.task_ids])
    assert scores[kinds == "retrieval"].mean() == 1.0
    assert scores[kinds == "familiar-rules"].mean() < 0.2
    ev0 = suite.episodes("novel", 0, 4, seed=0)
    assert DemoCopy(fallback="?").predict(ev0.batch) == [["?"]] * 4


def test_reachability_of_novel_rules():
    reach = novel_rule_reachability()
    assert set(reach) == set(NOVEL_RULES)
    assert reach["vowel-2"] == "vowel-1+vowel-1" and reach["caesar-3"] == "caesar-1+caesar-2"
    assert reach["caesar-7"] is None and reach["sort+vowel-2"] is None
    for rule, prog in reach.items():  # what is called reachable really computes the rule
        if prog is not None:
            assert all(apply_rule(prog, x) == apply_rule(rule, x) for x in ("bakelo", "tisu", "zaro"))
    assert template_reachability("rules/vowel-2") == "reachable"
    assert template_reachability("rules/add-7") == "unreachable"
    assert template_reachability("knowledge/capital-heldout") == "unreachable"
    assert template_reachability("retrieval/novel-3") == "unreachable"
    assert template_reachability("something/else") is None
    assert reachable("caesar-3", pool_rules=["reverse"]) is None


def test_template_strings_solves_exactly_the_reachable_novel_rules():
    suite = get_suite("strings", kinds=["rules"], n_prompts=1)
    t = TemplateStrings().fit(suite.pool())
    assert t.reaches("vowel-2") == "vowel-1+vowel-1"
    ev = suite.episodes("novel", 8, 24, seed=0)
    scores = suite.score(ev, t.predict(ev.batch))
    reach = np.array([template_reachability(i) == "reachable" for i in ev.batch.task_ids])
    assert reach.any() and (~reach).any()
    assert scores[reach].mean() == 1.0 and scores[~reach].mean() == 0.0


@pytest.mark.parametrize("pool_size", [1, 4, 7])
def test_novel_orthogonal_tasks_are_orthogonal_to_every_pool_task(pool_size):
    suite = get_suite("linear-regression", pool_size=pool_size)
    W = suite.pool().weights
    ev = suite.episodes("novel-orthogonal", 4, 50, seed=0)
    w = ev.extra["weights"]
    assert np.abs(w @ W.T).max() < 1e-9 * np.abs(w).max() * np.abs(W).max()
    assert np.linalg.matrix_rank(w) == 8 - pool_size  # they fill the whole complement
    assert 0.6 < (w ** 2).sum(1).mean() / 8 < 1.4  # the prior's scale is kept
    # template mixing cannot reach them: its posterior mean stays in the pool's span, so it
    # is orthogonal to every such task, whatever it is shown
    t = TemplateMix().fit(suite.pool())
    ev16 = suite.episodes("novel-orthogonal", 16, 50, seed=0)
    post = gaussian_posterior_mean(t.cov_, ev16.batch.support_x, ev16.batch.support_y, 0.25)
    assert np.abs((post * ev16.extra["weights"]).sum(1)).max() < 1e-9


def test_novel_orthogonal_for_large_pools_avoids_the_top_principal_directions():
    suite = get_suite("linear-regression", pool_size=64)
    W = suite.pool().weights
    _, _, vt = np.linalg.svd(W)
    w = suite.episodes("novel-orthogonal", 4, 30, seed=0).extra["weights"]
    assert np.abs(w @ vt[:4].T).max() < 1e-9  # orthogonal to the top d // 2 directions
    assert np.linalg.matrix_rank(w) == 4


def test_task_family_shift():
    base = get_suite("linear-regression", pool_size=16)
    same = get_suite("linear-regression", pool_size=16, task_prior="gaussian", task_scale=1.0)
    np.testing.assert_array_equal(base.episodes("novel", 4, 5, 0).extra["weights"],
                                  same.episodes("novel", 4, 5, 0).extra["weights"])
    sparse = get_suite("linear-regression", pool_size=16, task_prior="sparse", sparsity=2)
    w = sparse.episodes("novel", 4, 400, 0).extra["weights"]
    assert ((w != 0).sum(1) == 2).all()
    assert 0.8 < (w ** 2).sum(1).mean() / 8 < 1.2
    np.testing.assert_array_equal(sparse.pool().weights, base.pool().weights)  # the pool is not shifted
    big = get_suite("linear-regression", pool_size=16, task_scale=2.0).episodes("novel", 4, 400, 0)
    assert 3.0 < (big.extra["weights"] ** 2).sum(1).mean() / 8 < 5.0
    for bad in ({"task_prior": "laplace"}, {"task_scale": 0}, {"sparsity": 9}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            get_suite("linear-regression", **bad)


def test_task_family_is_hidden_from_predictors():
    pool = get_suite("linear-regression", pool_size=16, task_prior="sparse").pool()
    assert not {"task_prior", "task_scale", "sparsity"} & set(pool.params)
    assert pool.params["pool_size"] == 16


def test_the_orthogonal_basis_is_computed_once_per_suite_and_cannot_be_changed():
    suite = get_suite("linear-regression", pool_size="unlimited")
    U = suite.orthogonal_basis()
    assert suite.orthogonal_basis() is U and not U.flags.writeable
    with pytest.raises(ValueError):
        U[0, 0] = 1.0
    # a fresh suite (no cache) draws the same novel-orthogonal episodes at every shot count
    for shots in (0, 16):
        a = suite.episodes("novel-orthogonal", shots, 5, seed=0)
        b = get_suite("linear-regression", pool_size="unlimited").episodes("novel-orthogonal", shots, 5, seed=0)
        np.testing.assert_array_equal(a.extra["weights"], b.extra["weights"])
        np.testing.assert_array_equal(a.batch.support_x, b.batch.support_x)
