"""Template selection for regression: choose among the pool's tasks, never learn a new one."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.predictor import NotApplicable, Predictor
from benchmark.registry import register_predictor


def pool_log_posterior(W: np.ndarray, F: np.ndarray, X: np.ndarray, y: np.ndarray,
                       noise: float) -> np.ndarray:
    """Unnormalised log posterior (B, M) of each pool task given demonstrations ``X``, ``y``.

    Uses the sufficient statistics XᵀX and Xᵀy, so the cost is two matrix products over the
    whole batch: -(‖y - Xw‖²)/2σ² = (2wᵀXᵀy - ⟨XᵀX, wwᵀ⟩)/2σ² + const.
    ``F`` holds the flattened outer products wwᵀ, shape (M, d²).
    """
    B, _, d = X.shape
    A = np.einsum("bkd,bke->bde", X, X).reshape(B, d * d)
    b = np.einsum("bkd,bk->bd", X, y)
    return (2.0 * (b @ W.T) - A @ F.T) / (2.0 * max(noise, 1e-8))


class _PoolTemplate(Predictor):
    family = "template"
    chunk_elements = 1 << 22  # bound the (episodes x pool) logit matrix held at once

    def fit(self, pool: Any) -> "_PoolTemplate":
        W = getattr(pool, "weights", None)
        if W is None:
            raise NotApplicable("the pool is unlimited: no finite set of templates to select from "
                                "(the posterior mean over an unlimited Gaussian pool is ridge)")
        self.weights_ = np.asarray(W, dtype=float)
        self.outer_ = np.einsum("md,me->mde", self.weights_, self.weights_).reshape(len(W), -1)
        self.noise_ = float(pool.params.get("noise", 1.0))
        return self

    def _task_weights(self, logits: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, batch: Any) -> np.ndarray:
        B = len(batch)
        step = max(1, self.chunk_elements // len(self.weights_))
        w = np.empty((B, self.weights_.shape[1]))
        for s in range(0, B, step):
            X, y = batch.support_x[s : s + step], batch.support_y[s : s + step]
            logits = pool_log_posterior(self.weights_, self.outer_, X, y, self.noise_)
            w[s : s + step] = self._task_weights(logits)
        return np.einsum("bqd,bd->bq", batch.query_x, w)


@register_predictor("template-dmmse")
class TemplateDMMSE(_PoolTemplate):
    """Soft template selection: the Bayes posterior mean when tasks are uniform over the pool
    (Raventós et al.'s dMMSE). The best template selection can do; vectorized over pool and
    episodes.

    Example
    -------
    >>> from benchmark import get_suite
    >>> suite = get_suite("linear-regression", pool_size=4)
    >>> t = TemplateDMMSE().fit(suite.pool())
    >>> t.predict(suite.episodes("seen-task", 8, 2, seed=0).batch).shape
    (2, 4)
    """

    def _task_weights(self, logits: np.ndarray) -> np.ndarray:
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        return p @ self.weights_


@register_predictor("template-best")
class TemplateBest(_PoolTemplate):
    """Hard template selection: the single pool task that best fits the demonstrations (ties,
    as with no demonstrations, go to the first pool task).

    Example
    -------
    >>> from benchmark import get_suite
    >>> suite = get_suite("linear-regression", pool_size=4)
    >>> t = TemplateBest().fit(suite.pool())
    >>> t.predict(suite.episodes("seen-task", 8, 2, seed=0).batch).shape
    (2, 4)
    """

    def _task_weights(self, logits: np.ndarray) -> np.ndarray:
        return self.weights_[np.argmax(logits, axis=1)]
