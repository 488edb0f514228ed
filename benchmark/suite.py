"""Suites: generate, from seeds, the offline pool and the evaluation episodes of each split."""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from benchmark.episodes import EpisodeBatch, EvalSet


class TaskPool:
    """Everything the offline phase may see: pool tasks and offline prompts (with their answers).

    ``prompts`` is an :class:`EpisodeBatch` of offline episodes and ``prompt_targets`` their
    answers; the ``memorized`` split re-presents exactly these. ``task_hashes`` fingerprint the
    pool's tasks by content, for the contamination audit. Suites subclass this to expose more
    (e.g. task weights, a sequence sampler for meta-training).
    """

    def __init__(self, suite: "Suite", task_ids: Sequence[str], task_hashes: Sequence[str],
                 prompts: EpisodeBatch, prompt_targets: Any, prompt_hashes: Sequence[str]):
        self.suite_name = suite.name
        self.params = dict(suite.params)
        self.task_ids = list(task_ids)
        self.task_hashes = list(task_hashes)
        self.prompts = prompts
        self.prompt_targets = prompt_targets
        self.prompt_hashes = list(prompt_hashes)

    def __len__(self) -> int:
        return len(self.task_ids)


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

    def pool(self) -> TaskPool:  # pragma: no cover - abstract
        raise NotImplementedError

    def episodes(self, split: str, shots: int, n: int, seed: int) -> EvalSet:  # pragma: no cover
        raise NotImplementedError

    def score(self, evalset: EvalSet, predictions: Any) -> np.ndarray:  # pragma: no cover
        """One score per episode."""
        raise NotImplementedError

    def config_key(self) -> dict[str, Any]:
        return {"suite": self.name, **self.params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"
