"""An example plugin predictor: ridge whose penalty is chosen per episode by leave-one-out CV."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.linear_model import RidgeCV

from benchmark.predictor import Predictor

__all__ = ["RidgeCVPredictor"]


class RidgeCVPredictor(Predictor):
    """Ridge on each episode's demonstrations, the penalty picked from ``alphas`` by scikit-learn's
    leave-one-out ``RidgeCV`` (no intercept, as the tasks have none); 0 with no demonstrations.

    Registered as ``ridge-cv`` through the ``triadbench.predictors`` entry point.

    Example
    -------
    >>> from benchmark import get_suite
    >>> ev = get_suite("linear-regression", d=4).episodes("novel", 6, 2, seed=0)
    >>> RidgeCVPredictor().predict(ev.batch).shape
    (2, 4)
    """

    name = "ridge-cv"
    family = "reference"
    modalities = ("vector",)

    def __init__(self, alphas: Sequence[float] = (0.01, 0.1, 1.0, 10.0)):
        self.alphas = alphas

    def predict(self, batch: Any) -> np.ndarray:
        B, Q = batch.query_x.shape[:2]
        out = np.zeros((B, Q))
        if batch.shots < 2:  # leave-one-out needs two points; the prior mean is 0
            return out
        for i in range(B):  # one small fit per episode: answers never depend on batch-mates
            model = RidgeCV(alphas=tuple(self.alphas), fit_intercept=False)
            model.fit(batch.support_x[i], batch.support_y[i])
            out[i] = model.predict(batch.query_x[i])
        return out
