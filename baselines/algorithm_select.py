"""Algorithm selection: pick one of several memorized estimators by leave-one-out on the demos.

A skeptic's baseline (issue 14): a system may hold a few fixed algorithms (a template mixer,
ridge at some strengths, least squares, nearest neighbours) and only choose among them at
runtime. Choosing is not learning a new algorithm, so the "learns beyond templates" claim has
to beat this too.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from baselines.template_mix import gaussian_posterior_mean, one_blas_thread, pool_prior_covariance
from baselines.template_regression import pool_log_posterior
from benchmark.predictor import NotApplicable, Predictor
from benchmark.registry import register_predictor

CANDIDATES = ("dmmse", "mix", "ridge", "ols", "knn")


def _dmmse_weights(W: np.ndarray, F: np.ndarray, X: np.ndarray, y: np.ndarray,
                   noise: float) -> np.ndarray:
    logits = pool_log_posterior(W, F, X, y, noise)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return p @ W


def _ridge_weights(X: np.ndarray, y: np.ndarray, lambdas: Sequence[float]) -> np.ndarray:
    """(L, B, d): ridge solutions for every lambda from one eigendecomposition of XᵀX."""
    A = np.einsum("bkd,bke->bde", X, X)
    b = np.einsum("bkd,bk->bd", X, y)
    e, V = np.linalg.eigh(A)
    vb = np.einsum("bde,bd->be", V, b)  # Vᵀb
    lam = np.asarray(lambdas, dtype=float)[:, None, None]
    return np.einsum("bde,lbe->lbd", V, vb[None] / (e[None] + lam))


def _ols_weights(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("bdk,bk->bd", np.linalg.pinv(X), y)


def _knn_predict(X: np.ndarray, y: np.ndarray, keep: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    """Mean output of the ``k`` nearest kept demonstrations to each query (B, q); 0 with none."""
    n_keep = int(keep.sum())
    if n_keep == 0:
        return np.zeros(Q.shape[:2])
    kk = min(k, n_keep)
    dist = ((Q[:, :, None, :] - X[:, None, :, :]) ** 2).sum(-1)
    dist[:, :, ~keep] = np.inf
    nearest = np.argsort(dist, axis=-1, kind="stable")[..., :kk]
    ys = np.take_along_axis(np.broadcast_to(y[:, None, :], dist.shape), nearest, -1)
    return ys.mean(-1)


@register_predictor("algorithm-select")
class AlgorithmSelect(Predictor):
    """Chooses, per episode, the memorized estimator with the lowest leave-one-out error on the
    demonstrations, then answers with it fitted on all of them.

    Candidates (``candidates``, in tie-break order): ``dmmse`` (posterior mean over the pool's
    tasks), ``mix`` (template-mix, Gaussian prior WᵀW/M), ``ridge`` at each of ``lambdas``,
    ``ols`` (minimum norm) and ``knn`` (``k`` nearest demonstrations). Leave-one-out at k shots
    predicts each demonstration from the other k-1; at 1 shot that is each estimator's 0-shot
    answer (dMMSE's pool mean, 0 for the others). At 0 shots there is nothing to select on and
    it answers with the first candidate (dMMSE: the pool's mean task). Least squares is eligible
    only from k >= d + 2 shots, where it and its leave-one-out fits are overdetermined: near
    k = d it interpolates the noise, and a lucky leave-one-out score would pick a fit whose
    query error is unbounded.

    Example
    -------
    >>> from benchmark import get_suite
    >>> suite = get_suite("linear-regression", pool_size=4)
    >>> a = AlgorithmSelect().fit(suite.pool())
    >>> a.predict(suite.episodes("novel", 8, 2, seed=0).batch).shape
    (2, 4)
    """

    family = "template"

    def __init__(self, candidates: Sequence[str] = CANDIDATES,
                 lambdas: Sequence[float] = (0.01, 0.1, 0.25, 1.0, 4.0), k: int = 3):
        self.candidates = candidates
        self.lambdas = lambdas
        self.k = k

    def fit(self, pool: Any) -> "AlgorithmSelect":
        cands = [c for c in self.candidates]
        bad = [c for c in cands if c not in CANDIDATES]
        if bad or not cands:
            raise ValueError(f"algorithm-select: candidates must be a non-empty subset of "
                             f"{CANDIDATES}, got {self.candidates!r}")
        if "ridge" in cands and (not len(self.lambdas) or min(self.lambdas) <= 0):
            raise ValueError(f"algorithm-select: lambdas must be positive, got {self.lambdas!r}")
        W = getattr(pool, "weights", None)
        if W is None:
            raise NotApplicable("the pool is unlimited: no memorized pool tasks to build the "
                                "template estimators from")
        self.weights_ = np.asarray(W, dtype=float)
        self.outer_ = np.einsum("md,me->mde", self.weights_, self.weights_).reshape(len(W), -1)
        self.cov_ = pool_prior_covariance(self.weights_)
        self.noise_ = float(pool.params.get("noise", 1.0))
        names: list[str] = []
        for c in cands:
            names += [f"ridge-{lam:g}" for lam in self.lambdas] if c == "ridge" else [c]
        self.estimators_ = names
        return self

    def _weights(self, X: np.ndarray, y: np.ndarray, dmmse: bool = True) -> list[np.ndarray | None]:
        """Weight vectors (B, d) of every linear estimator, in ``estimators_`` order (kNN, and
        dMMSE when not ``dmmse``: None)."""
        out: list[np.ndarray | None] = []
        for c in self.candidates:
            if c == "dmmse":
                out.append(_dmmse_weights(self.weights_, self.outer_, X, y, self.noise_) if dmmse else None)
            elif c == "mix":
                out.append(gaussian_posterior_mean(self.cov_, X, y, self.noise_))
            elif c == "ridge":
                out += list(_ridge_weights(X, y, self.lambdas))
            elif c == "ols":
                out.append(_ols_weights(X, y) if X.shape[1] else np.zeros((len(X), X.shape[2])))
            else:
                out.append(None)
        return out

    def _predict_all(self, X: np.ndarray, y: np.ndarray, keep: np.ndarray, Q: np.ndarray,
                     dmmse: bool = True) -> np.ndarray:
        """(E, B, q) predictions at ``Q`` of every estimator fitted on the kept demonstrations
        (dMMSE's row is NaN when not ``dmmse``)."""
        m = keep.astype(float)
        Xm, ym = X * m[None, :, None], y * m[None, :]  # a zeroed point adds nothing to the fit
        preds = []
        for c, w in zip(self._kinds(), self._weights(Xm, ym, dmmse)):
            if c == "knn":
                preds.append(_knn_predict(X, y, keep, Q, int(self.k)))
            elif w is None:
                preds.append(np.full(Q.shape[:2], np.nan))
            else:
                preds.append(np.einsum("bqd,bd->bq", Q, w))
        return np.stack(preds)

    def _kinds(self) -> list[str]:
        """The candidate kind of each entry of ``estimators_``."""
        return [n.split("-")[0] for n in self.estimators_]

    def _dmmse_loo(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(B, k) dMMSE's prediction of each demonstration from the others, in one pass: the
        log posterior without point i is the full one minus point i's own term."""
        P = np.einsum("bkd,md->bkm", X, self.weights_)  # w_m · x_i
        full = pool_log_posterior(self.weights_, self.outer_, X, y, self.noise_)  # (B, M)
        own = (2.0 * P * y[..., None] - P ** 2) / (2.0 * max(self.noise_, 1e-8))
        logits = full[:, None, :] - own
        logits -= logits.max(axis=2, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=2, keepdims=True)
        return (p * P).sum(axis=2)

    def loo_errors(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(E, B) mean leave-one-out squared error of every estimator on each episode's demos,
        in closed form (no refit): for the kernel forms (ridge, template-mix) the residual of
        point i is [K⁻¹y]_i / [K⁻¹]_ii with K = X C Xᵀ + s·I; for least squares r_i / (1 - H_ii);
        dMMSE drops point i's term from the log posterior; kNN excludes point i."""
        B, k, d = X.shape
        err = np.zeros((len(self.estimators_), B))
        if k == 0:
            return err
        row = 0
        eye = np.eye(k)
        for c in self.candidates:
            if c == "dmmse":
                err[row] = ((self._dmmse_loo(X, y) - y) ** 2).mean(axis=1)
                row += 1
            elif c in ("mix", "ridge"):
                if c == "mix":
                    K = [np.einsum("bkd,de,ble->bkl", X, self.cov_, X) + max(self.noise_, 1e-10) * eye]
                else:
                    G = np.einsum("bkd,bld->bkl", X, X)
                    K = [G + lam * eye for lam in self.lambdas]
                for Ki in K:
                    inv = np.linalg.inv(Ki)
                    res = np.einsum("bkl,bl->bk", inv, y) / np.einsum("bkk->bk", inv)
                    err[row] = (res ** 2).mean(axis=1)
                    row += 1
            elif c == "ols":
                if k >= d + 2:  # eligible only here (see predict); overdetermined LOO fits
                    H = X @ np.linalg.pinv(X)
                    r = y - np.einsum("bkl,bl->bk", H, y)
                    err[row] = ((r / (1.0 - np.einsum("bkk->bk", H))) ** 2).mean(axis=1)
                else:
                    err[row] = np.inf
                row += 1
            else:  # knn: the nearest other demonstrations
                if k == 1:
                    err[row] = y[:, 0] ** 2
                else:
                    dist = ((X[:, :, None, :] - X[:, None, :, :]) ** 2).sum(-1)
                    dist[:, np.arange(k), np.arange(k)] = np.inf
                    kk = min(int(self.k), k - 1)
                    nearest = np.argsort(dist, axis=-1, kind="stable")[..., :kk]
                    ys = np.take_along_axis(np.broadcast_to(y[:, None, :], dist.shape), nearest, -1)
                    err[row] = ((ys.mean(-1) - y) ** 2).mean(axis=1)
                row += 1
        return err

    def predict(self, batch: Any) -> np.ndarray:
        with one_blas_thread():
            return self._predict(batch)

    def _predict(self, batch: Any) -> np.ndarray:
        X = np.asarray(batch.support_x, dtype=float)
        y = np.asarray(batch.support_y, dtype=float)
        Q = np.asarray(batch.query_x, dtype=float)
        k = X.shape[1]
        preds = self._predict_all(X, y, np.ones(k, dtype=bool), Q)  # (E, B, q)
        if k == 0:
            return preds[0]
        err = self.loo_errors(X, y)  # least squares is inf below d + 2 shots
        choice = np.argmin(err, axis=0)  # first estimator wins ties
        return preds[choice, np.arange(len(X))]
