"""Episodes: what a predictor is shown at runtime (demonstrations and query inputs, never targets)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from benchmark.seeding import opaque_ids

SPLITS = ("memorized", "seen-task", "novel", "ood", "novel-orthogonal")
MODALITIES = ("vector", "string", "grid")
#: the split every batch handed to ``predict`` says it is: the predictor is not told
SEALED_SPLIT = "sealed"
#: the only ``meta`` key a predictor receives: per episode, the answers the task declares possible
#: (a list of strings, or None), part of the task's statement, never derived from held-out data
ANSWER_SPACE = "answer_space"
PREDICTOR_META = (ANSWER_SPACE,)
#: meta entries holding one value per episode (subset with the batch)
PER_EPISODE_META = (ANSWER_SPACE,)


@dataclass(frozen=True, eq=False)
class EpisodeBatch:
    """Many episodes of one split at one number of demonstrations (shots).

    For the ``vector`` modality the fields are arrays: ``support_x`` (B, shots, d),
    ``support_y`` (B, shots), ``query_x`` (B, Q, d). For other modalities they are lists with
    one entry per episode. Query targets are deliberately absent: they stay in :class:`EvalSet`.

    The batch a predictor receives is the *sealed view* (:meth:`sealed`): ``task_ids`` are
    random opaque episode ids (new for every call, no task identity), ``split`` is
    ``"sealed"``, and ``meta`` holds at most ``meta["answer_space"]``.

    Example
    -------
    >>> import numpy as np
    >>> b = EpisodeBatch("vector", "novel", 2, ["t0"], np.zeros((1, 2, 3)), np.zeros((1, 2)),
    ...                  np.ones((1, 1, 3)))
    >>> len(b), b[0].query_x.shape
    (1, (1, 1, 3))
    """

    modality: str
    split: str
    shots: int
    task_ids: Sequence[str]
    support_x: Any
    support_y: Any
    query_x: Any
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.task_ids)

    def __getitem__(self, index: int | slice | Sequence[int]) -> "EpisodeBatch":
        """A sub-batch; an integer keeps a batch of one so predictors see one type."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        if isinstance(index, slice):
            index = list(range(len(self)))[index]
        index = list(index)

        def take(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v[index]
            return [v[i] for i in index]

        meta = {k: (take(list(v)) if k in PER_EPISODE_META and v is not None else v)
                for k, v in self.meta.items()}
        return EpisodeBatch(
            self.modality, self.split, self.shots, take(list(self.task_ids)),
            take(self.support_x), take(self.support_y), take(self.query_x), meta,
        )

    def sealed(self, ids: Sequence[str] | None = None) -> "EpisodeBatch":
        """The predictor's view: the same demonstrations and queries (copied), opaque ids, no
        split, and of ``meta`` only the declared answer space."""
        ids = list(ids) if ids is not None else opaque_ids(len(self))
        if len(ids) != len(self):
            raise ValueError(f"{len(ids)} ids for {len(self)} episodes")
        meta = {k: copy.deepcopy(self.meta[k]) for k in PREDICTOR_META
                if self.meta.get(k) is not None}
        return EpisodeBatch(self.modality, SEALED_SPLIT, self.shots, ids,
                            copy.deepcopy(self.support_x), copy.deepcopy(self.support_y),
                            copy.deepcopy(self.query_x), meta)

    def chunks(self, size: int):
        """Consecutive sub-batches of at most ``size`` episodes."""
        for start in range(0, len(self), max(1, size)):
            yield self[start : start + size]


@dataclass(frozen=True, eq=False)
class EvalSet:
    """An :class:`EpisodeBatch` plus what only the harness may see: targets and task fingerprints."""

    batch: EpisodeBatch
    targets: Any
    task_hashes: Sequence[str]
    episode_ids: Sequence[str]
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def task_ids(self) -> Sequence[str]:
        """The tasks of the episodes (harness side only; results.csv's ``task_id``)."""
        return self.batch.task_ids

    @property
    def split(self) -> str:
        return self.batch.split

    def view(self, ids: Sequence[str] | None = None) -> EpisodeBatch:
        """What ``predict`` receives: :meth:`EpisodeBatch.sealed`."""
        return self.batch.sealed(ids)

    def subset(self, index: Sequence[int]) -> "EvalSet":
        index = list(index)
        targets = (self.targets[index] if isinstance(self.targets, np.ndarray)
                   else [self.targets[i] for i in index])
        extra = {k: (v[index] if isinstance(v, np.ndarray) else [v[i] for i in index])
                 for k, v in self.extra.items()}
        return EvalSet(self.batch[index], targets, [self.task_hashes[i] for i in index],
                       [self.episode_ids[i] for i in index], extra)
