"""benchmark.stats against references: scipy's bootstrap, exact binomial intervals, the t test, Holm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as ss

from benchmark import stats as S


def test_bootstrap_mean_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(1)
    for v in (rng.exponential(1.0, 60), rng.normal(3, 2, 200)):
        m, lo, hi = S.bootstrap_ci(v, n_boot=4000, seed=2)
        ref = ss.bootstrap((v,), np.mean, n_resamples=4000, method="percentile", random_state=3,
                           vectorized=True).confidence_interval
        width = ref.high - ref.low
        assert m == pytest.approx(v.mean())
        assert abs(lo - ref.low) < 0.08 * width and abs(hi - ref.high) < 0.08 * width


def test_cluster_bootstrap_without_shared_tasks_is_the_plain_bootstrap():
    v = np.random.default_rng(0).normal(size=50)
    assert S.cluster_bootstrap_ci(v, np.arange(50), seed=4) == pytest.approx(S.bootstrap_ci(v, seed=4))
    assert S.cluster_labels([f"t{i}" for i in range(50)], 50)[1] == "episodes"


def test_cluster_bootstrap_widens_when_episodes_share_tasks():
    """10 tasks x 10 episodes with a strong task effect: resampling episodes pretends there are 100
    independent units; resampling tasks knows there are 10 and gives a wider interval."""
    rng = np.random.default_rng(5)
    tasks = np.repeat([f"task-{i}" for i in range(10)], 10)
    values = np.repeat(rng.normal(0, 1, 10), 10) + rng.normal(0, 0.1, 100)
    _, lo_e, hi_e = S.bootstrap_ci(values, seed=1)
    _, lo_t, hi_t = S.cluster_bootstrap_ci(values, tasks, seed=1)
    assert (hi_t - lo_t) > 2.0 * (hi_e - lo_e)
    c = S.claim(values, tasks)
    assert c.unit == "tasks" and c.n == 10 and c.n_episodes == 100
    assert not c.tested  # 10 tasks < MIN_UNITS: shown, never decided
    # the ratio-of-sums mean: a resample with every cluster once gives the plain mean
    assert c.mean == pytest.approx(values.mean())


@pytest.mark.parametrize("k,n", [(0, 5), (1, 1), (3, 10), (10, 10), (17, 40)])
@pytest.mark.parametrize("method,ref", [("clopper-pearson", "exact"), ("wilson", "wilson")])
def test_proportion_intervals_match_scipy_binomtest(k, n, method, ref):
    lo, hi = S.proportion_ci(k, n, method=method)
    want = ss.binomtest(k, n).proportion_ci(confidence_level=0.95, method=ref)
    assert lo == pytest.approx(want.low, abs=1e-9) and hi == pytest.approx(want.high, abs=1e-9)
    assert hi > lo


def test_zero_one_outcomes_get_the_exact_interval():
    v = np.r_[np.ones(7), np.zeros(13)]
    m, lo, hi = S.bootstrap_ci(v)
    want = ss.binomtest(7, 20).proportion_ci(method="exact")
    assert m == 0.35 and lo == pytest.approx(want.low) and hi == pytest.approx(want.high)
    import pandas as pd

    from benchmark.tables import grouped_bootstrap

    g = grouped_bootstrap(pd.DataFrame({"g": ["a"] * 20, "score": v}), ["g"]).iloc[0]
    assert g["lo"] == pytest.approx(want.low) and g["hi"] == pytest.approx(want.high)


def test_proportions_never_get_a_zero_width_interval():
    m, lo, hi = S.bootstrap_ci(np.ones(30))
    assert m == 1.0 and lo < 1.0 and hi == pytest.approx(1.0)
    assert lo == pytest.approx(S.proportion_ci(30, 30)[0])  # the exact bound of 30/30
    m, lo, hi = S.bootstrap_ci([1.0])  # one episode solved: a wide interval, not [1, 1]
    assert lo < 0.1
    m, lo, hi = S.bootstrap_ci(np.ones(25), n_boot=500)  # a paired gain of +1 everywhere
    assert lo < 1.0
    _, lo, hi = S.bootstrap_ci(np.full(30, 2.5))  # a constant error is not a proportion
    assert lo == hi == 2.5


def test_cluster_t_test_is_the_t_test_without_clusters():
    v = np.random.default_rng(2).normal(0.3, 1, 40)
    p, sd = S.cluster_t_test(v)
    assert p == pytest.approx(ss.ttest_1samp(v, 0).pvalue, rel=1e-9)
    assert sd == pytest.approx(v.std(ddof=1))


def _holm_reference(p, alpha):
    """Holm's step-down procedure as written in his paper: reject while p_(i) <= alpha / (m - i)."""
    order = np.argsort(p)
    reject = np.zeros(len(p), bool)
    for i, j in enumerate(order):
        if p[j] > alpha / (len(p) - i):
            break
        reject[j] = True
    return reject


def test_holm_matches_the_step_down_procedure():
    rng = np.random.default_rng(3)
    for _ in range(200):
        p = rng.uniform(0, 0.05, rng.integers(1, 30)) ** rng.uniform(0.5, 2)
        for alpha in (0.05, 0.01):
            assert ((S.holm(p) <= alpha) == _holm_reference(p, alpha)).all()
    adj = S.holm([0.01, np.nan, 0.02])
    assert np.isnan(adj[1]) and adj[0] == pytest.approx(0.02) and adj[2] == pytest.approx(0.02)


def test_units_needed_is_the_normal_power_formula():
    z = ss.norm.ppf(0.975) + ss.norm.ppf(0.8)
    assert S.units_needed(0.5, 1.0) == np.ceil((z / 0.5) ** 2)
    assert S.units_needed(0.0, 1.0) == np.inf


def test_a_single_episode_is_never_tested():
    c = S.claim([1.0])
    assert c.n == 1 and not c.tested and np.isnan(c.p)
    c = S.claim(np.random.default_rng(0).normal(1, 1, S.MIN_UNITS))
    assert c.tested and c.p < 0.05


def test_heavy_tails_are_flagged():
    rng = np.random.default_rng(4)
    assert S.heavy_tailed(np.r_[rng.normal(1, 0.1, 95), [200, 300, 150, 400, 250]])
    assert not S.heavy_tailed(rng.normal(1, 0.1, 100))
