"""The one interface every baseline implements: ``fit(pool)`` offline, ``predict(batch)`` at runtime."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

FAMILIES = ("lookup", "template", "in-context", "fine-tune", "reference")


class NotApplicable(Exception):
    """Raised by a predictor that cannot be scored in a setting; the run records it as skipped."""


class Predictor:
    """Base class for predictors, in the spirit of scikit-learn estimators.

    The constructor only stores its keyword arguments; :meth:`fit` runs the offline phase on a
    :class:`~benchmark.suite.TaskPool` and stores learned state in attributes ending in ``_``;
    :meth:`predict` answers a batch of episodes without side effects on that state (except for
    predictors that declare ``updates_weights_at_runtime``, and even they must restore it).

    Example
    -------
    >>> import numpy as np
    >>> class Mean(Predictor):
    ...     name, family = "mean-y", "reference"
    ...     def predict(self, batch):
    ...         m = batch.support_y.mean(axis=1) if batch.shots else np.zeros(len(batch))
    ...         return np.repeat(m[:, None], batch.query_x.shape[1], axis=1)
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "reference"
    updates_weights_at_runtime: ClassVar[bool] = False
    modalities: ClassVar[tuple[str, ...]] = ("vector",)
    #: rough CPU seconds one episode costs on one core (an order of magnitude is enough): the
    #: local executor starts the costliest chunks of cells first, so no long one runs alone last
    cost_hint: ClassVar[float] = 1e-3
    #: the suite parameters that decide which of this predictor's cells share its per-process
    #: memo (a fitted prior, searched tasks); cells agreeing on them run in one worker chunk.
    #: ``None``: every suite parameter (cells share a worker only when they share a fit)
    chunk_by: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, **params: Any) -> None:
        # Subclasses with explicit keyword arguments store them as attributes of the same name.
        for k, v in params.items():
            setattr(self, k, v)

    # -- scikit-learn style parameter access -------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, as stored."""
        return {k: getattr(self, k) for k in self._param_names() if hasattr(self, k)}

    def set_params(self, **params: Any) -> "Predictor":
        known = set(self._param_names())
        for k, v in params.items():
            if known and k not in known:
                raise ValueError(f"predictor {self.name!r} has no parameter {k!r}; "
                                 f"known: {', '.join(sorted(known)) or 'none'}")
            setattr(self, k, v)
        return self

    # -- the two phases ----------------------------------------------------------------------
    def fit(self, pool: Any) -> "Predictor":
        """Offline phase: sees only the suite's pool (read-only; no run seed or evaluation key).
        The default learns nothing."""
        return self

    def predict(self, batch: Any) -> Any:  # pragma: no cover - abstract
        """Runtime phase: the sealed view of a batch (demonstrations, query inputs, shot count
        and a declared ``meta["answer_space"]``; opaque ids, split ``"sealed"``). The answers
        may depend on nothing else (the ``identity-invariant`` check)."""
        raise NotImplementedError

    def accepts(self, modality: str) -> bool:
        return modality in self.modalities

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
