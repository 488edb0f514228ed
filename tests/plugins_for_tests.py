"""Predictors that misbehave on purpose, for the executor tests (registered by importing this
module; worker processes import it through ``TRIADBENCH_PLUGINS=plugins_for_tests``)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np

from benchmark.predictor import Predictor
from benchmark.registry import register_predictor


@register_predictor("test-raise-some")
class RaiseSome(Predictor):
    """Predicts zero, but raises on every episode whose first query coordinate is negative.

    >>> RaiseSome().family
    'reference'
    """

    family = "reference"

    def predict(self, batch: Any) -> np.ndarray:
        if (batch.query_x[:, 0, 0] < 0).any():
            raise RuntimeError("test predictor refuses negative first coordinates")
        return np.zeros(batch.query_x.shape[:2])


@register_predictor("test-kill")
class KillWorker(Predictor):
    """Predicts zero, but kills its own process (SIGKILL) at ``shots`` demonstrations (every
    split: the sealed view does not say which split a batch is from).

    >>> KillWorker(shots=2).shots
    2
    """

    family = "reference"

    def __init__(self, shots: int = 2):
        self.shots = shots

    def predict(self, batch: Any) -> np.ndarray:
        if batch.shots == self.shots:
            os.kill(os.getpid(), signal.SIGKILL)
        return np.zeros(batch.query_x.shape[:2])


@register_predictor("test-sleep")
class Sleep(Predictor):
    """Predicts zero after sleeping ``seconds`` (``only_shots``: sleep at that shot count only;
    ``native``: in one uninterruptible call).

    >>> Sleep(seconds=0.5).seconds
    0.5
    """

    family = "reference"

    def __init__(self, seconds: float = 0.2, only_shots: int = -1, native: bool = False):
        self.seconds = seconds
        self.only_shots = only_shots
        self.native = native

    def predict(self, batch: Any) -> np.ndarray:
        if self.native and (self.only_shots < 0 or batch.shots == self.only_shots):
            # stuck as in native code: no Python signal handler runs, only a kill stops it
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            try:
                time.sleep(self.seconds)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        elif self.only_shots < 0 or batch.shots == self.only_shots:
            end = time.monotonic() + self.seconds
            while time.monotonic() < end:  # Python-level waiting, so a timeout can interrupt it
                time.sleep(0.05)
        return np.zeros(batch.query_x.shape[:2])


@register_predictor("test-nan")
class NaNPredictor(Predictor):
    """Predicts NaN everywhere (as a corrupted checkpoint would): every row must be an error.

    >>> NaNPredictor().family
    'reference'
    """

    family = "reference"

    def predict(self, batch: Any) -> np.ndarray:
        return np.full(batch.query_x.shape[:2], np.nan)


@register_predictor("test-mutate")
class MutatePredictor(Predictor):
    """Predicts zero but changes a learned array in every predict call (a runtime weight update
    it does not restore), for the runner's ``weights_unchanged`` column.

    >>> MutatePredictor().fit(None).w_.shape
    (1,)
    """

    family = "reference"

    def fit(self, pool: Any) -> "MutatePredictor":
        self.w_ = np.zeros(1)
        return self

    def predict(self, batch: Any) -> np.ndarray:
        self.w_ += 1.0
        return np.zeros(batch.query_x.shape[:2])


@register_predictor("test-host-choice")
class HostChoice(Predictor):
    """Predicts zero; records a fit-time choice read from ``TRIAD_TEST_CHOICE`` (standing in for
    ``dtype="auto"`` resolving differently on another host).

    >>> HostChoice().fit(None).chosen_params_["dtype"] in {"float32", "bf16-mixed"}
    True
    """

    family = "reference"

    def fit(self, pool: Any) -> "HostChoice":
        self.chosen_params_ = {"dtype": os.environ.get("TRIAD_TEST_CHOICE", "float32")}
        return self

    def predict(self, batch: Any) -> np.ndarray:
        return np.zeros(batch.query_x.shape[:2])
