"""Template mixing: the Bayes posterior mean under a Gaussian prior fitted to the pool's tasks.

A skeptic's baseline (issue 14): a system that only mixes memorized tasks, never leaving the
Gaussian they span, can look like a learner on novel tasks drawn from the same Gaussian.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from benchmark.predictor import NotApplicable, Predictor
from benchmark.registry import register_predictor

PRIORS = ("pool-covariance", "span")


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Small batched linear algebra runs on one BLAS thread: on the shared 2-core CPU a second
    thread spin-waits (measured: algorithm-select 0.075 s vs 0.022 s per 100-episode cell)."""
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        yield
        return
    if _CONTROLLER is None:  # inspecting the loaded libraries costs ~10 ms: do it once
        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        yield


_CONTROLLER = None


def pool_prior_covariance(W: np.ndarray, prior: str = "pool-covariance") -> np.ndarray:
    """The prior covariance a template mixer fits to the pool's task vectors ``W`` (M, d).

    ``"pool-covariance"``: WᵀW/M (zero-mean Gaussian with the pool's second moment; singular
    when M < d, so the posterior mean never leaves the span of the pool). ``"span"``: isotropic
    inside the span of the pool and zero outside it, c·P with P the orthogonal projector onto
    span(W) and c = tr(WᵀW/M)/rank (the same total variance as the pool, spread evenly).
    """
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or len(W) == 0:
        raise ValueError(f"pool task weights must be a non-empty (M, d) array, got shape {W.shape}")
    C = W.T @ W / len(W)
    if prior == "pool-covariance":
        return C
    if prior == "span":
        _, s, vt = np.linalg.svd(W, full_matrices=False)
        rank = int((s > s.max() * 1e-10).sum()) if s.size and s.max() > 0 else 0
        if rank == 0:
            return np.zeros_like(C)
        U = vt[:rank].T
        return np.trace(C) / rank * (U @ U.T)
    raise ValueError(f"template-mix: prior must be one of {PRIORS}, got {prior!r}")


def gaussian_posterior_mean(C: np.ndarray, X: np.ndarray, y: np.ndarray, noise: float) -> np.ndarray:
    """Posterior mean (B, d) of w ~ N(0, C) given y = Xw + N(0, noise): C Xᵀ (X C Xᵀ + noise I)⁻¹ y.

    The k x k form works for a singular C (and costs a k x k solve per episode, k = shots).
    """
    B, k, d = X.shape
    if k == 0:
        return np.zeros((B, d))
    XC = X @ C  # (B, k, d)
    G = np.einsum("bkd,bld->bkl", XC, X) + max(float(noise), 1e-10) * np.eye(k)
    alpha = np.linalg.solve(G, y[..., None])[..., 0]  # (B, k)
    return np.einsum("bkd,bk->bd", XC, alpha)


@register_predictor("template-mix")
class TemplateMix(Predictor):
    """Bayes posterior mean under a zero-mean Gaussian prior fitted to the pool's task vectors.

    ``prior="pool-covariance"`` uses WᵀW/M; ``prior="span"`` an isotropic prior restricted to
    the span of the pool (``template-mix-span``). With M < d tasks both stay inside the pool's
    span: a task orthogonal to it (the ``novel-orthogonal`` split) gets a zero prediction.
    With M >= d and tasks drawn from N(0, I), WᵀW/M tends to I and this tends to ridge.

    Example
    -------
    >>> from benchmark import get_suite
    >>> suite = get_suite("linear-regression", pool_size=4)
    >>> t = TemplateMix().fit(suite.pool())
    >>> t.predict(suite.episodes("novel", 8, 2, seed=0).batch).shape
    (2, 4)
    """

    family = "template"

    def __init__(self, prior: str = "pool-covariance"):
        self.prior = prior

    def fit(self, pool: Any) -> "TemplateMix":
        W = getattr(pool, "weights", None)
        if W is None:
            raise NotApplicable("the pool is unlimited: its Gaussian is the task prior itself, "
                                "and the posterior mean under it is ridge")
        self.cov_ = pool_prior_covariance(np.asarray(W, dtype=float), self.prior)
        self.noise_ = float(pool.params.get("noise", 1.0))
        return self

    def predict(self, batch: Any) -> np.ndarray:
        with one_blas_thread():
            w = gaussian_posterior_mean(self.cov_, np.asarray(batch.support_x, dtype=float),
                                        np.asarray(batch.support_y, dtype=float), self.noise_)
            return np.einsum("bqd,bd->bq", batch.query_x, w)


@register_predictor("template-mix-span")
class TemplateMixSpan(TemplateMix):
    """``template-mix`` with an isotropic prior restricted to the span of the pool's tasks.

    Example
    -------
    >>> TemplateMixSpan().prior
    'span'
    """

    def __init__(self, prior: str = "span"):
        self.prior = prior
