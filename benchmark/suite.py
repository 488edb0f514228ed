"""Suites: generate, from seeds, the offline pool and the evaluation episodes of each split."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar, Sequence

import numpy as np

from benchmark.episodes import EpisodeBatch, EvalSet


class FrozenParams(dict):
    """A read-only dict: the suite parameters a predictor may see (``pool.params``).

    >>> p = FrozenParams({"d": 8})
    >>> p["d"], dict(p)
    (8, {'d': 8})
    """

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("pool.params is read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]
    __ior__ = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (FrozenParams, (dict(self),))


def freeze(obj: Any, depth: int = 8) -> Any:
    """Make every numpy array reachable through lists, tuples, dicts and episode batches
    read-only (in place), so the offline phase cannot change what other predictors see."""
    if depth < 0:
        return obj
    if isinstance(obj, np.ndarray):
        obj.setflags(write=False)
        if obj.dtype == object:
            for v in obj.ravel():
                freeze(v, depth - 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            freeze(v, depth - 1)
    elif isinstance(obj, dict):
        for v in obj.values():
            freeze(v, depth - 1)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            freeze(getattr(obj, f.name), depth - 1)
    return obj


class TaskPool:
    """Everything the offline phase may see: pool tasks and offline prompts (with their answers).

    ``prompts`` is an :class:`EpisodeBatch` of offline episodes and ``prompt_targets`` their
    answers; the ``memorized`` split re-presents exactly these. ``task_hashes`` fingerprint what
    the pool shows of its tasks, by content. ``params`` holds the suite's
    :meth:`Suite.public_params` (read-only); every array is read-only. Nothing here names the
    run seed or an evaluation key: evaluation episodes cannot be regenerated from a pool.
    Suites subclass this to expose more (e.g. task weights, a sequence sampler for
    meta-training), never held-out data.
    """

    def __init__(self, suite: "Suite", task_ids: Sequence[str], task_hashes: Sequence[str],
                 prompts: EpisodeBatch, prompt_targets: Any, prompt_hashes: Sequence[str]):
        self.suite_name = suite.name
        self.params = FrozenParams(suite.public_params())
        self.task_ids = list(task_ids)
        self.task_hashes = list(task_hashes)
        self.prompts = freeze(prompts)
        self.prompt_targets = freeze(prompt_targets)
        self.prompt_hashes = list(prompt_hashes)

    def __len__(self) -> int:
        return len(self.task_ids)

    def copy(self) -> "TaskPool":
        """A deep, again read-only copy: what one predictor's ``fit`` gets, so that nothing it
        does to its pool reaches another predictor or the harness's audit."""
        try:
            other = copy.deepcopy(self)
        except Exception:  # a plugin pool holding something uncopyable: a shallow copy
            other = copy.copy(self)
        for v in vars(other).values():
            freeze(v)
        return other


class Suite:
    """Base class for suites. Parameters are validated in the constructor, before any work.

    Subclasses set ``name``, ``modality``, ``splits``, ``metric`` (and whether higher is better)
    and implement :meth:`pool`, :meth:`episodes` and :meth:`score`.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str] = "vector"
    splits: ClassVar[tuple[str, ...]] = ("memorized", "seen-task", "novel")
    metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = False
    metric_range: ClassVar[tuple[float, float]] = (0.0, float("inf"))
    defaults: ClassVar[dict[str, Any]] = {}
    #: parameters the offline phase must not see (e.g. a folder holding held-out answers)
    hidden_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"suite {self.name!r}: unknown parameter(s) {sorted(unknown)}; "
                             f"known: {sorted(self.defaults)}")
        self.params = {**self.defaults, **params}
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the parameter when a value is out of range."""

    @property
    def max_shots(self) -> int:
        return int(self.params.get("max_shots", 0))

    def check_shots(self, shots: Sequence[int]) -> None:
        bad = [s for s in shots if not 0 <= int(s) <= self.max_shots]
        if bad:
            raise ValueError(f"suite {self.name!r}: shots {bad} outside 0..{self.max_shots}")

    def check_splits(self, splits: Sequence[str]) -> None:
        bad = [s for s in splits if s not in self.splits]
        if bad:
            raise ValueError(f"suite {self.name!r}: unknown split(s) {bad}; "
                             f"this suite has {list(self.splits)}")

    def public_params(self) -> dict[str, Any]:
        """The parameters a predictor may see through ``pool.params`` (all but ``hidden_params``)."""
        return {k: v for k, v in self.params.items() if k not in self.hidden_params}

    def pool(self) -> TaskPool:  # pragma: no cover - abstract
        raise NotImplementedError

    def pool_fingerprints(self, pool: TaskPool) -> list[str]:
        """Content fingerprints of the pool's tasks for the contamination audit (harness side).

        The default is ``pool.task_hashes``; a suite whose pool withholds part of a task (arc)
        returns fingerprints of the whole tasks here, so a held-out task equal to a pool task is
        still found while predictors never get a hash of what was withheld.
        """
        return list(pool.task_hashes)

    def excluded_tasks(self) -> dict[str, str]:
        """Held-out tasks left out of scoring, with the reason (e.g. an overlap with the pool)."""
        return {}

    def episodes(self, split: str, shots: int, n: int, seed: int) -> EvalSet:  # pragma: no cover
        """``n`` episodes of ``split`` at ``shots`` demonstrations, drawn from ``seed``, the run's
        evaluation key (see :func:`benchmark.seeding.eval_key`). Episode ``i`` must not depend on
        ``n`` (prefix-stable): derive each episode from its own stream, e.g.
        ``stream(seed, self.name, split, "episode", i)``."""
        raise NotImplementedError

    def score(self, evalset: EvalSet, predictions: Any) -> np.ndarray:  # pragma: no cover
        """One score per episode."""
        raise NotImplementedError

    def config_key(self) -> dict[str, Any]:
        return {"suite": self.name, **self.params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"
