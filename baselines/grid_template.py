"""Template selection for grids: compose the pool's primitives, checked against every demonstration.

``template-grids`` searches programs of up to ``depth`` primitives from ``baselines.arc_dsl``
(geometry, cell rules, connected objects, regions split by lines, colour rules) followed by a
colour map (or an enlargement layout / patch table) fitted on the demonstrations, best-first by
prior cost and distance of the partial output to the demonstrations' outputs.
``fit`` runs the same search on every pool task (all
pairs the pool shows) and learns a prior: how often each primitive family occurs in the pool's
solutions; frequent families cost less, so programs built from them are tried first. ``predict``
answers each task with the first ``attempts`` programs (cheapest first) that reproduce every
demonstration and give distinct test answers. Budgets: ``max_nodes`` candidate programs and
``task_seconds`` per task, ``split_seconds`` per ``predict`` call (``clock``: ``"cpu"`` process
time, or ``"wall"``). Each episode's answer list carries ``info``: the programs in readable
form, their depths, the nodes and seconds spent and whether a budget ran out.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any, Sequence

import numpy as np

from baselines.arc_dsl.search import SearchResult, search
from benchmark.predictor import Predictor
from benchmark.registry import register_predictor
from benchmark.seeding import content_hash

_PRIORS: dict = {}   # (pool fingerprint, fit settings) -> fitted prior (per process)
_ANSWERS: dict = {}  # (task content, settings, prior) -> (answers, info): the same task is searched once
_MAX_ANSWERS = 20000


class ArcAttempts(list):
    """One episode's answers (per test input, a list of attempts) plus ``info`` on the search."""

    info: dict

    def __init__(self, answers: Sequence[list], info: dict):
        super().__init__(answers)
        self.info = info


def _clock(name: str):
    if name == "cpu":
        return time.process_time
    if name == "wall":
        return time.perf_counter
    raise ValueError(f"predictor 'template-grids': clock must be 'cpu' or 'wall', got {name!r}")


@register_predictor("template-grids")
class TemplateGrids(Predictor):
    """Best-first search over compositions of ARC primitives, ranked by a prior learned on the pool.

    Example
    -------
    >>> import numpy as np
    >>> from benchmark.episodes import EpisodeBatch
    >>> xs = [np.array([[1, 2], [3, 4]]), np.array([[1, 1], [2, 0]])]
    >>> b = EpisodeBatch("grid", "novel", 1, ["flip"], [xs], [[np.fliplr(x) for x in xs]],
    ...                  [[np.array([[5, 0, 0]])]])
    >>> out = TemplateGrids().predict(b)
    >>> out[0][0][0], out[0].info["programs"][0]  # first attempt for the only test input
    ([[0, 0, 5]], 'flip_lr')
    """

    family = "template"
    modalities = ("grid",)
    cost_hint = 0.15  # 0.1-0.5 s per task at depth 3 and 2,000 nodes (a split holds <= 500 tasks)
    # the fitted prior and the searched tasks are memoized per process: the cells of one pool
    # (any scoring, any task-size filter) run in one worker and reuse them
    chunk_by = ("version", "pool_seed", "memorized_fraction", "path")

    def __init__(self, attempts: int = 2, depth: int = 3, max_nodes: int = 2000, task_seconds: float = 2.0,
                 split_seconds: float = 600.0, clock: str = "cpu", ordered: bool = True, fit_depth: int = 2,
                 fit_nodes: int = 600, fit_seconds: float = 300.0):
        self.attempts = attempts
        self.depth = depth
        self.max_nodes = max_nodes
        self.task_seconds = task_seconds
        self.split_seconds = split_seconds
        self.clock = clock
        self.ordered = ordered
        self.fit_depth = fit_depth
        self.fit_nodes = fit_nodes
        self.fit_seconds = fit_seconds

    def _check(self) -> None:
        for k in ("attempts", "max_nodes", "fit_nodes"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if k == "attempts" else 0):
                raise ValueError(f"predictor 'template-grids': {k} must be a non-negative integer"
                                 f"{' >= 1' if k == 'attempts' else ''}, got {v!r}")
        for k in ("depth", "fit_depth"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 4:
                raise ValueError(f"predictor 'template-grids': {k} must be an integer 0-4, got {v!r}")
        for k in ("task_seconds", "split_seconds", "fit_seconds"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"predictor 'template-grids': {k} must be a number >= 0, got {v!r}")
        _clock(self.clock)

    # -- offline phase -------------------------------------------------------------------------
    def fit(self, pool: Any) -> "TemplateGrids":
        """Search every pool task (all the pairs the pool shows); count primitive families in solutions."""
        self._check()
        P = pool.prompts
        key = (content_hash(tuple(pool.task_hashes), tuple(pool.prompt_hashes)), self.ordered,
               self.fit_depth, self.fit_nodes, self.fit_seconds, self.clock)
        prior = _PRIORS.get(key)
        if prior is None:
            prior = self._learn(P, pool.prompt_targets) if self.ordered else {
                "families": {}, "programs": {}, "solved": 0, "tasks": len(P), "timed_out": False}
            _PRIORS[key] = prior
        fam = prior["families"]
        top = max(fam.values(), default=0)
        # a family seen in many pool solutions costs ~1; one never seen costs 1 + log(1 + top) / 2
        self.family_cost_ = {f: 1.0 + 0.5 * math.log((1 + top) / (1 + n)) for f, n in fam.items()}
        self.family_cost_["*"] = 1.0 + 0.5 * math.log(1 + top)
        self.pool_programs_ = dict(prior["programs"])
        self.prior_key_ = content_hash(sorted(self.family_cost_.items()))
        self.chosen_params_ = {"pool_tasks_solved": prior["solved"], "pool_tasks": prior["tasks"],
                               "fit_timed_out": prior["timed_out"],
                               "top_families": dict(Counter(fam).most_common(8))}
        return self

    def _learn(self, P: Any, targets: Sequence) -> dict:
        clock = _clock(self.clock)
        t0 = clock()
        fams: Counter = Counter()
        progs: Counter = Counter()
        solved = 0
        timed_out = False
        for i in range(len(P)):
            left = self.fit_seconds - (clock() - t0)
            if left <= 0:
                timed_out = True
                break
            pairs = list(zip(P.support_x[i], P.support_y[i])) + list(zip(P.query_x[i], targets[i]))
            r = search(pairs, [], max_depth=self.fit_depth, max_nodes=self.fit_nodes,
                       seconds=min(self.task_seconds, left), want=1, clock=clock)
            if r.found:
                solved += 1
                f = r.found[0]
                fams.update(set(f.families))
                progs[" | ".join(f.names) or "identity"] += 1
        return {"families": dict(fams), "programs": dict(progs), "solved": solved, "tasks": len(P),
                "timed_out": timed_out}

    # -- runtime -------------------------------------------------------------------------------
    def _settings(self) -> tuple:
        return (self.attempts, self.depth, self.max_nodes, self.task_seconds, self.clock,
                getattr(self, "prior_key_", None))

    def search_task(self, demos: Sequence[tuple[Any, Any]], queries: Sequence[Any],
                    seconds: float | None = None) -> SearchResult:
        """The search for one task under this predictor's prior and budgets."""
        self._check()
        return search(demos, queries, getattr(self, "family_cost_", None), max_depth=self.depth,
                      max_nodes=self.max_nodes, seconds=self.task_seconds if seconds is None else seconds,
                      want=self.attempts + 1, clock=_clock(self.clock))

    def predict_task(self, demos: Sequence[tuple[Any, Any]], queries: Sequence[Any],
                     seconds: float | None = None) -> ArcAttempts:
        """Attempts for each test input of one task (an :class:`ArcAttempts` carrying ``info``)."""
        key = (content_hash(*[g for p in demos for g in p], "|", *queries), self._settings())
        hit = _ANSWERS.get(key)
        if hit is not None:
            return ArcAttempts([list(a) for a in hit[0]], dict(hit[1]))
        r = self.search_task(demos, queries, seconds)
        answers = [[f.outputs[j].tolist() for f in r.found[: self.attempts]] for j in range(len(queries))]
        info = r.info()
        info["split_budget_hit"] = False
        info["in_pool"] = [self.pool_programs_.get(" | ".join(f.names) or "identity", 0)
                           for f in r.found] if hasattr(self, "pool_programs_") else []
        if not r.timed_out:  # a timed-out search may find more another time: not memoized
            if len(_ANSWERS) >= _MAX_ANSWERS:
                _ANSWERS.clear()
            _ANSWERS[key] = (answers, info)
        return ArcAttempts([list(a) for a in answers], dict(info))

    def predict(self, batch: Any) -> list:
        self._check()
        clock = _clock(self.clock)
        t0 = clock()
        out = []
        for sx, sy, qx in zip(batch.support_x, batch.support_y, batch.query_x):
            left = self.split_seconds - (clock() - t0)
            if left <= 0:  # the whole-call budget is spent: no search, recorded as a timeout
                out.append(ArcAttempts([[] for _ in qx], {
                    "programs": [], "depths": [], "nodes": 0, "seconds": 0.0, "timed_out": True,
                    "node_budget_hit": False, "split_budget_hit": True, "in_pool": []}))
                continue
            demos = [(np.asarray(x), np.asarray(y)) for x, y in zip(sx, sy)]
            out.append(self.predict_task(demos, [np.asarray(q) for q in qx], min(self.task_seconds, left)))
        return out
