"""Reference learners for vector tasks: what fitting the demonstrations alone achieves."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.predictor import Predictor
from benchmark.registry import register_predictor


def ridge_weights(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Batched ridge solution (B, d) of ``X`` (B, k, d), ``y`` (B, k): (XᵀX + λI)⁻¹Xᵀy."""
    d = X.shape[-1]
    A = np.einsum("bkd,bke->bde", X, X) + lam * np.eye(d)
    return np.linalg.solve(A, np.einsum("bkd,bk->bd", X, y)[..., None])[..., 0]


@register_predictor("zero")
class Zero(Predictor):
    """Predicts the prior mean, 0, whatever it is shown.

    Example
    -------
    >>> from benchmark import get_suite
    >>> ev = get_suite("linear-regression").episodes("novel", 4, 2, seed=0)
    >>> Zero().predict(ev.batch).tolist()
    [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """

    family = "reference"

    def predict(self, batch: Any) -> np.ndarray:
        return np.zeros(batch.query_x.shape[:2])


@register_predictor("ridge")
class Ridge(Predictor):
    """Ridge regression on the demonstrations; with ``alpha=None`` it uses the suite's
    noise variance over the prior variance (1), which makes it the Bayes posterior mean for the
    linear-regression prior: the best any learner can do on novel tasks.

    Example
    -------
    >>> from benchmark import get_suite
    >>> suite = get_suite("linear-regression")
    >>> r = Ridge().fit(suite.pool())
    >>> r.alpha_
    0.25
    """

    family = "reference"

    def __init__(self, alpha: float | None = None):
        self.alpha = alpha

    def fit(self, pool: Any) -> "Ridge":
        self.alpha_ = float(self.alpha if self.alpha is not None else pool.params.get("noise", 1.0))
        return self

    def predict(self, batch: Any) -> np.ndarray:
        if batch.shots == 0:
            return np.zeros(batch.query_x.shape[:2])
        alpha = getattr(self, "alpha_", self.alpha if self.alpha is not None else 1.0)
        w = ridge_weights(batch.support_x, batch.support_y, max(alpha, 1e-12))
        return np.einsum("bqd,bd->bq", batch.query_x, w)


@register_predictor("ols")
class OLS(Predictor):
    """Minimum-norm least squares on the demonstrations (interpolates when shots <= d).

    Example
    -------
    >>> from benchmark import get_suite
    >>> ev = get_suite("linear-regression").episodes("novel", 8, 3, seed=0)
    >>> OLS().predict(ev.batch).shape
    (3, 4)
    """

    family = "reference"

    def predict(self, batch: Any) -> np.ndarray:
        if batch.shots == 0:
            return np.zeros(batch.query_x.shape[:2])
        w = np.einsum("bdk,bk->bd", np.linalg.pinv(batch.support_x), batch.support_y)
        return np.einsum("bqd,bd->bq", batch.query_x, w)


@register_predictor("knn")
class KNN(Predictor):
    """Mean output of the ``k`` nearest demonstrations (fewer when fewer are shown; 0 with none).

    Example
    -------
    >>> from benchmark import get_suite
    >>> ev = get_suite("linear-regression").episodes("novel", 5, 2, seed=0)
    >>> KNN(k=3).predict(ev.batch).shape
    (2, 4)
    """

    family = "reference"

    def __init__(self, k: int = 3):
        self.k = k

    def predict(self, batch: Any) -> np.ndarray:
        B, Q = batch.query_x.shape[:2]
        if batch.shots == 0:
            return np.zeros((B, Q))
        k = min(int(self.k), batch.shots)
        dist = ((batch.query_x[:, :, None, :] - batch.support_x[:, None, :, :]) ** 2).sum(-1)
        nearest = np.argsort(dist, axis=-1, kind="stable")[..., :k]  # (B, Q, k)
        ys = np.take_along_axis(np.broadcast_to(batch.support_y[:, None, :], dist.shape), nearest, -1)
        return ys.mean(-1)
