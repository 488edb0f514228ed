"""A lookup table: answers only what it saw verbatim offline."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.predictor import Predictor
from benchmark.registry import register_predictor
from benchmark.seeding import content_hash


def _key(x: Any) -> str:
    if isinstance(x, str):
        return "s:" + x
    return content_hash(np.asarray(x))


@register_predictor("lookup")
class Lookup(Predictor):
    """Memorizes every (input -> output) pair of the offline prompts, keyed by content hash.

    On a miss it returns the declared ``fallback``: the prior mean (0) for vectors, the empty
    string for strings, no attempt for grids. It never uses the demonstrations.

    Example
    -------
    >>> from benchmark import get_suite
    >>> suite = get_suite("linear-regression", pool_size=4, n_prompts=8)
    >>> lk = Lookup().fit(suite.pool())
    >>> ev = suite.episodes("memorized", shots=2, n=3, seed=0)
    >>> lk.predict(ev.batch).shape
    (3, 4)
    """

    family = "lookup"
    modalities = ("vector", "string", "grid")

    def __init__(self, fallback: Any = None):
        self.fallback = fallback

    def fit(self, pool: Any) -> "Lookup":
        table: dict[str, Any] = {}
        P = pool.prompts
        for i in range(len(P)):
            for x, y in zip(P.support_x[i], P.support_y[i]):
                table.setdefault(_key(x), y)
            for x, y in zip(P.query_x[i], pool.prompt_targets[i]):
                table.setdefault(_key(x), y)
        self.table_ = table
        self.modality_ = P.modality
        return self

    def _default(self, modality: str) -> Any:
        if self.fallback is not None:
            return self.fallback
        return {"vector": 0.0, "string": "", "grid": None}[modality]

    def predict(self, batch: Any) -> Any:
        miss = self._default(batch.modality)
        if batch.modality == "vector":
            q = batch.query_x
            out = np.empty(q.shape[:2])
            for i in range(q.shape[0]):
                for j in range(q.shape[1]):
                    out[i, j] = self.table_.get(_key(q[i, j]), miss)
            return out
        if batch.modality == "grid":  # one attempt per query; none on a miss
            hits = [[self.table_.get(_key(x)) for x in qs] for qs in batch.query_x]
            return [[[y] if y is not None else [] for y in qs] for qs in hits]
        return [[self.table_.get(_key(x), miss) for x in qs] for qs in batch.query_x]
