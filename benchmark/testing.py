"""Conformance checks for predictors and suites, so a plugin can prove it follows the rules.

``check_predictor`` runs a predictor through small episodes of a suite and raises
:class:`ConformanceError` naming the broken rule; ``check_suite`` does the same for a suite.
``predictor_checks`` / ``suite_checks`` yield one ``(rule, callable)`` per rule for
``pytest.mark.parametrize``.

Example
-------
>>> from benchmark.testing import check_predictor, check_suite
>>> check_predictor("ridge", suite_params={"d": 4, "max_shots": 4, "pool_size": 8}).rules[:2]
['constructible-with-defaults', 'stores-params']
>>> check_suite("linear-regression", d=4, max_shots=4, pool_size=8).rules[0]
'suite-declaration'
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from benchmark.contamination import NOVEL_SPLITS, ContaminationError, audit
from benchmark.episodes import MODALITIES, SPLITS, EpisodeBatch, EvalSet
from benchmark.predictor import FAMILIES, NotApplicable
from benchmark.seeding import content_hash

# Tolerance for float predictions compared across calls and batchings (strings and grids: exact).
RTOL = 1e-5
ATOL = 1e-6

PREDICTOR_RULES = (
    "constructible-with-defaults",  # cls() works; suites and the runner construct by name
    "stores-params",                # each constructor argument stored under its own name
    "declares-metadata",            # name, family, modalities, updates_weights_at_runtime, cost_hint, chunk_by
    "fits-on-pool",                 # fit(pool) succeeds or raises NotApplicable, never another error
    "output-shape",                 # the prediction type and shape of the suite's modality
    "frozen-weights",               # updates_weights_at_runtime=False: predict changes no state
    "restores-weights",             # updates_weights_at_runtime=True: state restored after predict
    "deterministic",                # same seed, same answers (fit twice, predict twice)
    "no-target-access",             # predictions do not depend on the query targets
    "batch-independent",            # an episode's answer does not depend on its batch-mates
    "finite-outputs",               # no NaN or inf in a prediction
    "inputs-unmodified",            # predict leaves its batch, fit and predict the pool, unchanged
    "identity-invariant",           # the same answers whatever the ids, split and meta say
)
SUITE_RULES = (
    "suite-declaration",       # name, modality, splits (with novel), metric, metric_range
    "rejects-unknown-params",  # a misspelt parameter is an error, not silently ignored
    "deterministic",           # pool and episodes regenerate identically from the seeds
    "prefix-stable",           # episode i is the same whatever the episode count
    "sealed-pool",             # the pool: read-only arrays, no hidden parameter, no run seed
    "novel-disjoint",          # contamination audit: no novel/ood task or episode in the pool
    "memorized-in-pool",       # memorized episodes are offline prompts
    "non-empty-splits",        # every split has episodes at every shot count
    "batch-has-no-targets",    # the batch handed to predict carries no target-bearing field
    "score",                   # one finite score per episode, inside metric_range
)
# Field or meta names that would hand query targets to a predictor.
TARGET_NAMES = frozenset({"target", "targets", "query_y", "y_query", "query_targets", "answers",
                          "answer", "labels", "label", "query_outputs", "solutions", "solution"})
# Small settings for fast checks; only keys the suite declares in ``defaults`` are used.
SMALL_SUITE_PARAMS = {"d": 4, "max_shots": 4, "pool_size": 8, "n_prompts": 16, "queries": 2,
                      "max_task_cells": 150}


class ConformanceError(AssertionError):
    """A predictor or suite broke a rule; ``rule`` names it (one of ``PREDICTOR_RULES`` /
    ``SUITE_RULES``).

    Example
    -------
    >>> err = ConformanceError("deterministic", "answers differ")
    >>> err.rule, str(err)
    ('deterministic', '[deterministic] answers differ')
    """

    def __init__(self, rule: str, message: str):
        self.rule = rule
        super().__init__(f"[{rule}] {message}")


@dataclass
class ConformanceReport:
    """What a check covered: the rules passed, the (split, shots) settings run and those skipped.

    Example
    -------
    >>> ConformanceReport("zero", "linear-regression").rules
    []
    """

    subject: str
    suite: str
    rules: list[str] = field(default_factory=list)
    settings: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)

    def passed(self, rule: str) -> None:
        if rule not in self.rules:
            self.rules.append(rule)


# -- helpers --------------------------------------------------------------------------------------
def small_suite_params(suite_cls: type) -> dict:
    """The keys of ``SMALL_SUITE_PARAMS`` that ``suite_cls`` declares (fast but valid settings)."""
    defaults = getattr(suite_cls, "defaults", {}) or {}
    return {k: v for k, v in SMALL_SUITE_PARAMS.items() if k in defaults}


def _resolve_suite(suite: Any, params: dict | None) -> Any:
    from benchmark.registry import suite_class
    from benchmark.suite import Suite

    if isinstance(suite, Suite):
        if params:
            raise ValueError("suite_params given together with a constructed suite; pass a name")
        return suite
    cls = suite_class(suite) if isinstance(suite, str) else suite
    if params is None:
        params = small_suite_params(cls)
    return cls(**params)


def _shot_counts(suite: Any, shots: Sequence[int] | None) -> list[int]:
    if shots is not None:
        suite.check_shots(shots)
        return sorted({int(s) for s in shots})
    k = suite.max_shots
    return sorted({0, min(1, k), k})


def _runner_view(ev: EvalSet, sealed: bool = True, ids: Sequence[str] | None = None) -> EvalSet:
    """The EvalSet as the runner hands it over: ``subset`` copies every array of the batch, and
    (``sealed``) the batch is the predictor's sealed view (opaque ids, no split, answer space
    only)."""
    sub = ev.subset(range(len(ev)))
    if not sealed:
        return sub
    return EvalSet(sub.view(ids), sub.targets, sub.task_hashes, sub.episode_ids, sub.extra)


def _unsealed(ev: EvalSet) -> EpisodeBatch:
    """The view a leaky harness would hand over: real task ids, the split, every meta entry."""
    b = ev.batch
    return EpisodeBatch(b.modality, b.split, b.shots, list(b.task_ids), copy.deepcopy(b.support_x),
                        copy.deepcopy(b.support_y), copy.deepcopy(b.query_x), copy.deepcopy(dict(b.meta)))


def content_digest(obj: Any) -> str:
    """A digest of everything reachable through arrays, lists, tuples, dicts, episode batches and
    pools (their attributes), to tell whether a predictor changed its inputs."""
    parts: list[Any] = []
    seen: set[int] = set()

    def walk(v: Any, depth: int) -> None:
        if depth > 8 or id(v) in seen:
            return
        if isinstance(v, np.ndarray):
            parts.append(content_hash(v))
        elif isinstance(v, (str, bytes, int, float, bool, type(None), np.generic)):
            parts.append(repr(v))
        elif isinstance(v, dict):
            seen.add(id(v))
            for k in sorted(v, key=repr):
                parts.append(repr(k))
                walk(v[k], depth + 1)
        elif isinstance(v, (list, tuple)):
            seen.add(id(v))
            parts.append(f"[{len(v)}")
            for x in v:
                walk(x, depth + 1)
        elif dataclasses.is_dataclass(v) or hasattr(v, "__dict__"):
            seen.add(id(v))
            attrs = ({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
                     if dataclasses.is_dataclass(v) else vars(v))
            for k in sorted(attrs):
                if not callable(attrs[k]):
                    parts.append(k)
                    walk(attrs[k], depth + 1)

    walk(obj, 0)
    return content_hash(*parts)


def reachable_arrays(obj: Any, max_depth: int = 8) -> list[np.ndarray]:
    """Every numpy array reachable from ``obj`` through attributes, dicts, lists and tuples."""
    out: list[np.ndarray] = []
    seen: set[int] = set()

    def walk(v: Any, depth: int) -> None:
        if depth > max_depth or id(v) in seen or isinstance(v, (str, bytes, int, float, type(None))):
            return
        seen.add(id(v))
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                for x in v.ravel():
                    walk(x, depth + 1)
            else:
                out.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x, depth + 1)
        elif isinstance(v, (list, tuple, set, frozenset)):
            for x in v:
                walk(x, depth + 1)
        elif hasattr(v, "__dict__") and not callable(v):
            for x in vars(v).values():
                walk(x, depth + 1)

    walk(obj, 0)
    return out


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    """Floats within tolerance (NaN equal to NaN); everything else exactly equal."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            a, b = np.asarray(a), np.asarray(b)
        except (ValueError, TypeError):
            return False
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, float) or isinstance(b, float):
        try:
            fa, fb = float(a), float(b)
        except (TypeError, ValueError):
            return False
        return (math.isnan(fa) and math.isnan(fb)) or math.isclose(fa, fb, rel_tol=rtol, abs_tol=atol)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol, atol) for k in a)
    return bool(a == b)


def _episode(pred: Any, i: int) -> Any:
    return pred[i] if isinstance(pred, np.ndarray) else list(pred)[i]


def _first_difference(a: Any, b: Any, rtol: float, atol: float) -> str:
    n = len(a) if hasattr(a, "__len__") else 0
    for i in range(min(n, len(b) if hasattr(b, "__len__") else 0)):
        if not _close(_episode(a, i), _episode(b, i), rtol, atol):
            return f"episode {i}: {_short(_episode(a, i))} vs {_short(_episode(b, i))}"
    return f"{_short(a)} vs {_short(b)}"


def _short(v: Any, limit: int = 120) -> str:
    text = np.array2string(v, precision=6, threshold=8) if isinstance(v, np.ndarray) else repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _poison(v: Any) -> Any:
    """A structure-preserving copy in which every value differs: floats NaN, ints shifted mod 10,
    strings prefixed. A predictor that copies targets answers differently on the poisoned copy."""
    if isinstance(v, np.ndarray):
        if v.dtype.kind in "fc":
            return np.full_like(v, np.nan)
        if v.dtype.kind in "iu":
            return (v + 5) % 10
        if v.dtype.kind in "US":
            return np.char.add("\x00poison:", v.astype(str))
        return np.array([_poison(x) for x in v.ravel()], dtype=object).reshape(v.shape)
    if isinstance(v, (bool, np.bool_)):
        return not v
    if isinstance(v, (int, np.integer)):
        return (int(v) + 5) % 10
    if isinstance(v, (float, np.floating)):
        return float("nan")
    if isinstance(v, str):
        return "\x00poison:" + v
    if isinstance(v, (list, tuple)):
        return type(v)(_poison(x) for x in v) if isinstance(v, list) else tuple(_poison(x) for x in v)
    if isinstance(v, dict):
        return {k: _poison(x) for k, x in v.items()}
    return None


def _poisoned(ev: EvalSet) -> EvalSet:
    """A copy of ``ev`` with a deep-copied batch and poisoned targets and harness-only extras."""
    return EvalSet(copy.deepcopy(ev.batch), _poison(ev.targets), list(ev.task_hashes),
                   list(ev.episode_ids), {k: _poison(v) for k, v in ev.extra.items()})


def batch_target_fields(batch: EpisodeBatch, targets: Any = None) -> list[str]:
    """Names of batch fields or ``meta`` entries that could carry query targets (empty if none)."""
    found = []
    names = [f.name for f in dataclasses.fields(batch)] + list(getattr(batch, "__dict__", {}))
    found += [n for n in names if n.lower() in TARGET_NAMES]
    meta = getattr(batch, "meta", {}) or {}
    found += [f"meta[{k!r}]" for k in meta if str(k).lower() in TARGET_NAMES]
    if targets is not None:
        for k, v in meta.items():
            if v is targets or (isinstance(v, np.ndarray) and isinstance(targets, np.ndarray)
                                and np.shares_memory(v, targets)):
                found.append(f"meta[{k!r}] (is the targets object)")
        for name in ("support_x", "support_y", "query_x"):
            v = getattr(batch, name)
            if v is targets:
                found.append(f"{name} (is the targets object)")
            elif isinstance(v, np.ndarray) and isinstance(targets, np.ndarray) \
                    and np.shares_memory(v, targets):
                found.append(f"{name} (shares memory with the targets)")
    return found


# -- state snapshots (for the frozen-weights rule) -----------------------------------------------
_SKIP_TYPES = (type, type(len), type(_close), type(math))
_SCALARS = (str, bytes, int, float, complex, bool)


def _tensor_digest(t: Any) -> str:
    t = t.detach().cpu().contiguous()
    data = t.reshape(-1).view(__import__("torch").uint8).numpy() if t.numel() else np.empty(0, np.uint8)
    return content_hash(str(t.dtype), tuple(t.shape), data)


def state_snapshot(obj: Any, max_depth: int = 6, max_objects: int = 20000) -> dict[str, str]:
    """Digest of every numpy array, torch tensor and ``nn.Module`` state reachable from ``obj``'s
    attributes (dicts, lists, tuples and objects with ``__dict__``, bounded in depth and count)."""
    torch = __import__("sys").modules.get("torch")
    out: dict[str, str] = {}
    seen: set[int] = set()

    def walk(v: Any, path: str, depth: int) -> None:
        if len(seen) >= max_objects or id(v) in seen or v is None:
            return
        if isinstance(v, _SCALARS) or isinstance(v, _SKIP_TYPES):
            return
        seen.add(id(v))
        if isinstance(v, np.ndarray):
            out[path] = content_hash(v)
            return
        if torch is not None:
            if isinstance(v, torch.Tensor):
                out[path] = _tensor_digest(v)
                return
            if isinstance(v, torch.nn.Module):
                for k, t in v.state_dict(keep_vars=True).items():
                    out[f"{path}.state_dict[{k}]"] = _tensor_digest(t)
                out[f"{path}.training"] = str(v.training)
                return
        if depth >= max_depth:
            return
        # scalars are skipped before their path is formatted (a lookup table holds 10,000 of them)
        if isinstance(v, dict):
            for k, x in list(v.items()):
                if x is not None and not isinstance(x, _SCALARS):
                    walk(x, f"{path}[{k!r}]", depth + 1)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                if x is not None and not isinstance(x, _SCALARS):
                    walk(x, f"{path}[{i}]", depth + 1)
        elif hasattr(v, "__dict__") and not callable(v):
            for k, x in list(vars(v).items()):
                walk(x, f"{path}.{k}", depth + 1)

    if hasattr(obj, "__dict__"):
        for k, x in list(vars(obj).items()):
            walk(x, k, 1)
    return out


def _state_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Paths whose content changed or vanished (new entries, such as a filled cache, are allowed)."""
    return [p for p, h in before.items() if after.get(p) != h]


# -- the predictor checks -------------------------------------------------------------------------
def _predictor_class(p: Any) -> type:
    from benchmark.registry import predictor_class

    if isinstance(p, str):
        return predictor_class(p)
    return p if isinstance(p, type) else type(p)


def _fresh(p: Any, cls: type, params: dict) -> Any:
    if isinstance(p, (str, type)):
        return cls(**params)
    return cls(**p.get_params())


def _check_metadata(cls: type, report: ConformanceReport) -> None:
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        raise ConformanceError("declares-metadata", f"{cls.__name__}: class attribute `name` is empty")
    if getattr(cls, "family", None) not in FAMILIES:
        raise ConformanceError("declares-metadata", f"{name}: family {getattr(cls, 'family', None)!r} "
                               f"is not one of {FAMILIES}")
    mods = getattr(cls, "modalities", ())
    if not mods or any(m not in MODALITIES for m in mods):
        raise ConformanceError("declares-metadata", f"{name}: modalities {mods!r} must be a non-empty "
                               f"subset of {MODALITIES}")
    if not isinstance(getattr(cls, "updates_weights_at_runtime", None), bool):
        raise ConformanceError("declares-metadata", f"{name}: updates_weights_at_runtime must be a bool")
    cost = getattr(cls, "cost_hint", 1e-3)
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 <= cost < float("inf"):
        raise ConformanceError("declares-metadata", f"{name}: cost_hint must be a number >= 0 "
                               f"(seconds per episode), got {cost!r}")
    by = getattr(cls, "chunk_by", None)
    if by is not None and (not isinstance(by, tuple) or not all(isinstance(k, str) for k in by)):
        raise ConformanceError("declares-metadata", f"{name}: chunk_by must be None or a tuple of "
                               f"suite parameter names, got {by!r}")
    report.passed("declares-metadata")


def check_output(pred: Any, batch: EpisodeBatch) -> None:
    """Raise ``ConformanceError('output-shape')`` unless ``pred`` has the modality's type and shape.

    vector: a float array (B, Q); string: B lists of Q ``str``; grid: B lists of Q lists of at
    most 2 attempts, each a non-empty rectangular list of lists of ints 0-9 (or a 2-D integer
    array, as the arc suite's own grids are).
    """
    m, B = batch.modality, len(batch)
    Q = [len(q) for q in batch.query_x]
    where = f"modality {m!r}, split {batch.split!r}, shots {batch.shots}, {B} episodes"

    def fail(msg: str) -> None:
        raise ConformanceError("output-shape", f"{msg} ({where})")

    if m == "vector":
        if not isinstance(pred, np.ndarray):
            fail(f"expected a float numpy array of shape ({B}, {Q[0] if Q else 0}), got {type(pred).__name__}")
        if pred.dtype.kind != "f":
            fail(f"expected a float array, got dtype {pred.dtype}")
        if pred.shape != (B, Q[0] if Q else 0):
            fail(f"expected shape ({B}, {Q[0] if Q else 0}), got {pred.shape}")
        return
    if not isinstance(pred, list) or len(pred) != B:
        fail(f"expected a list of {B} lists (one per episode), got {_short(pred)}")
    for i, (ep, q) in enumerate(zip(pred, Q)):
        if not isinstance(ep, list) or len(ep) != q:
            fail(f"episode {i}: expected a list of {q} answers, got {_short(ep)}")
        for j, ans in enumerate(ep):
            if m == "string":
                if not isinstance(ans, str):
                    fail(f"episode {i}, query {j}: expected a str, got {type(ans).__name__}")
            elif m == "grid":
                if not isinstance(ans, list) or len(ans) > 2:
                    fail(f"episode {i}, query {j}: expected a list of at most 2 attempts, got {_short(ans)}")
                for a, grid in enumerate(ans):
                    _check_grid(grid, f"episode {i}, query {j}, attempt {a}", fail)


def _check_grid(grid: Any, where: str, fail: Callable[[str], None]) -> None:
    if isinstance(grid, np.ndarray):  # a 2-D integer array is accepted as a grid too
        if grid.ndim != 2 or grid.size == 0 or grid.dtype.kind not in "iu":
            fail(f"{where}: a grid array must be 2-D, non-empty and integer, got "
                 f"shape {grid.shape}, dtype {grid.dtype}")
        if grid.min() < 0 or grid.max() > 9:
            fail(f"{where}: cells must be ints 0-9, found {grid.min()}..{grid.max()}")
        return
    if not isinstance(grid, list) or not grid or not all(isinstance(r, list) and r for r in grid):
        fail(f"{where}: a grid must be a non-empty list of non-empty lists, got {_short(grid)}")
    if len({len(r) for r in grid}) != 1:
        fail(f"{where}: rows of different lengths {[len(r) for r in grid]}")
    for r in grid:
        for c in r:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= int(c) <= 9:
                fail(f"{where}: cells must be ints 0-9, found {c!r}")


# -- one function per sealed-view rule (called per setting by check_predictor) -------------------
def rule_finite_outputs(subject: str, out: Any, where: str) -> None:
    """``finite-outputs``: every float in a prediction is finite (the runner turns NaN and inf
    into error rows; a predictor with nothing to say predicts a fallback, e.g. zero)."""
    try:
        arr = np.asarray(out, dtype=float) if isinstance(out, np.ndarray) else None
    except (TypeError, ValueError):
        arr = None
    if arr is not None and not np.all(np.isfinite(arr)):
        raise ConformanceError("finite-outputs", f"{subject} predicted {int((~np.isfinite(arr)).sum())} "
                               f"non-finite value(s) (NaN or inf), e.g. {arr[~np.isfinite(arr)][0]} ({where})")


def rule_inputs_unmodified(subject: str, digest: str, batch: EpisodeBatch, where: str) -> None:
    """``inputs-unmodified``: predict leaves the batch's demonstrations, queries and meta as given."""
    if content_digest(batch) != digest:
        raise ConformanceError("inputs-unmodified", f"{subject}.predict changed the batch it was "
                               f"handed (demonstrations, queries or meta) ({where})")


def rule_pool_unmodified(subject: str, pool: Any, digest: str, phase: str, wanted: set) -> None:
    """``inputs-unmodified``: fit and predict leave the pool (shared by every predictor) unchanged."""
    if "inputs-unmodified" in wanted and digest and content_digest(pool) != digest:
        raise ConformanceError("inputs-unmodified", f"{subject}.{phase} changed the pool it was fitted "
                               "on (the runner shares one pool between predictors)")


def rule_identity_invariant(subject: str, pred: Any, out: Any, raw: EvalSet, where: str,
                            rtol: float, atol: float) -> None:
    """``identity-invariant``: the answers do not change when the opaque ids are drawn anew, nor
    when a leaky harness hands over the real task ids, the split and every meta entry: nothing but
    the demonstrations, queries, shot count and answer space may matter."""
    for label, batch in (("fresh opaque ids", raw.view()),
                         ("the real task ids, split and meta", _unsealed(raw))):
        again = pred.predict(batch)
        if not _close(out, again, rtol, atol):
            raise ConformanceError("identity-invariant", f"{subject} answers differently when given "
                                   f"{label}: it reads episode identity ({where}; "
                                   f"{_first_difference(out, again, rtol, atol)})")


def check_predictor(predictor: Any, suite: Any = "linear-regression", suite_params: dict | None = None,
                    *, params: dict | None = None, splits: Sequence[str] | None = None,
                    shots: Sequence[int] | None = None, episodes: int = 3, seed: int = 0,
                    rtol: float = RTOL, atol: float = ATOL,
                    rules: Sequence[str] | None = None) -> ConformanceReport:
    """Run ``predictor`` (a registered name, a class or an instance) through small episodes of
    ``suite`` at every split and a few shot counts (0, 1, max by default); raise
    :class:`ConformanceError` naming the first rule it breaks.

    ``params`` are constructor arguments (a name or class is also constructed with none, which
    must work). ``suite_params=None`` uses :func:`small_suite_params`. ``rules`` restricts the
    checks to a subset of ``PREDICTOR_RULES``. Raises :class:`NotApplicable` when the predictor
    declines the suite (its modality, or ``fit``/every ``predict`` raising ``NotApplicable``).
    Floats are compared with ``rtol``/``atol``; strings and grids exactly.
    """
    wanted = set(PREDICTOR_RULES if rules is None else rules)
    unknown = wanted - set(PREDICTOR_RULES)
    if unknown:
        raise ValueError(f"unknown rule(s) {sorted(unknown)}; known: {list(PREDICTOR_RULES)}")
    cls = _predictor_class(predictor)
    params = dict(params or {})
    s = _resolve_suite(suite, suite_params)
    report = ConformanceReport(getattr(cls, "name", cls.__name__) or cls.__name__, s.name)

    try:
        cls()
    except NotApplicable:
        raise
    except Exception as exc:
        raise ConformanceError("constructible-with-defaults",
                               f"{cls.__name__}() failed: {type(exc).__name__}: {exc}") from exc
    report.passed("constructible-with-defaults")
    if "stores-params" in wanted:
        obj = _fresh(predictor, cls, params)
        missing = [n for n in cls._param_names() if not hasattr(obj, n)] \
            if hasattr(cls, "_param_names") else []
        if missing:
            raise ConformanceError("stores-params", f"{cls.__name__}: constructor argument(s) {missing} "
                                   "not stored as attributes of the same name (get_params/clone break)")
        report.passed("stores-params")
    if "declares-metadata" in wanted:
        _check_metadata(cls, report)
    if s.modality not in getattr(cls, "modalities", ()):
        raise NotApplicable(f"{report.subject} does not accept modality {s.modality!r} "
                            f"of suite {s.name!r}")

    pools: list[tuple[Any, str]] = []

    def fitted() -> Any:
        pool = s.pool().copy()  # as the runner does: a deep, read-only copy per predictor
        pools.append((pool, content_digest(pool) if "inputs-unmodified" in wanted else ""))
        try:
            fitted_p = _fresh(predictor, cls, params).fit(pool)
        except NotApplicable:
            raise
        except Exception as exc:
            if "read-only" in str(exc) and "inputs-unmodified" in wanted:
                raise ConformanceError("inputs-unmodified", f"{report.subject}.fit tried to write "
                                       f"into the pool, whose arrays are read-only: {exc}") from exc
            raise ConformanceError("fits-on-pool", f"{report.subject}.fit on the pool of {s!r} raised "
                                   f"{type(exc).__name__}: {exc} (raise NotApplicable when a "
                                   "resource such as a checkpoint or a model is missing)") from exc
        rule_pool_unmodified(report.subject, *pools[-1], "fit", wanted)
        return fitted_p

    p1 = fitted()  # NotApplicable propagates: the predictor declines these suite settings
    p2 = fitted() if "deterministic" in wanted else None
    frozen = not cls.updates_weights_at_runtime
    split_list = list(splits) if splits is not None else list(s.splits)
    s.check_splits(split_list)
    for split in split_list:
        for k in _shot_counts(s, shots):
            where = f"split {split!r}, shots {k}"
            raw = s.episodes(split, k, episodes, seed)
            ev = _runner_view(raw)
            if "no-target-access" in wanted:
                leaks = batch_target_fields(ev.batch, ev.targets)
                if leaks:
                    raise ConformanceError("no-target-access", f"suite {s.name!r} ({where}) hands the "
                                           f"predictor target-bearing field(s): {', '.join(leaks)}")
            before = state_snapshot(p1)
            digest = content_digest(ev.batch) if "inputs-unmodified" in wanted else ""
            try:
                out = p1.predict(ev.batch)
            except NotApplicable as exc:
                report.skipped.append((split, k, str(exc)))
                continue
            if "inputs-unmodified" in wanted:
                rule_inputs_unmodified(report.subject, digest, ev.batch, where)
            after = state_snapshot(p1)
            changed = _state_changes(before, after)
            if changed and frozen and "frozen-weights" in wanted:
                raise ConformanceError("frozen-weights", f"{report.subject} declares "
                                       f"updates_weights_at_runtime=False but predict changed "
                                       f"{', '.join(changed[:5])} ({where})")
            if changed and not frozen and "restores-weights" in wanted:
                raise ConformanceError("restores-weights", f"{report.subject} updates weights at "
                                       f"runtime but did not restore {', '.join(changed[:5])} "
                                       f"after predict ({where})")
            if "output-shape" in wanted:
                check_output(out, ev.batch)
            if "finite-outputs" in wanted:
                rule_finite_outputs(report.subject, out, where)
            out = copy.deepcopy(out)

            if "deterministic" in wanted:
                again = p1.predict(ev.batch)
                if not _close(out, again, rtol, atol):
                    raise ConformanceError("deterministic", f"{report.subject}: two identical predict "
                                           f"calls differ ({where}; {_first_difference(out, again, rtol, atol)})")
                other = p2.predict(ev.batch)
                if not _close(out, other, rtol, atol):
                    raise ConformanceError("deterministic", f"{report.subject}: two fresh constructions "
                                           f"fitted on the same pool with seed {seed} answer "
                                           f"differently ({where}; {_first_difference(out, other, rtol, atol)})")
            if "no-target-access" in wanted:
                # Only a poisoned copy is alive now: a predictor that finds the EvalSet (through
                # gc, caller frames or anything else) reads poison and answers differently.
                poisoned = _poisoned(ev)
                ids = list(ev.batch.task_ids)  # the same opaque ids again after regeneration
                del ev, raw  # no cycles: the real EvalSets are freed here
                try:
                    out_p = p1.predict(poisoned.batch)
                except Exception as exc:
                    raise ConformanceError("no-target-access", f"{report.subject}: predict raised "
                                           f"{type(exc).__name__}: {exc} once the query targets "
                                           f"were replaced by poison ({where})") from exc
                if not _close(out, out_p, rtol, atol):
                    raise ConformanceError("no-target-access", f"{report.subject} answers differently "
                                           f"when the query targets (which it is never handed) are "
                                           f"replaced by poison: it reached them ({where}; "
                                           f"{_first_difference(out, out_p, rtol, atol)})")
                del poisoned
                raw = s.episodes(split, k, episodes, seed)
                ev = _runner_view(raw, ids=ids)

            if "batch-independent" in wanted and len(ev) > 1:
                for i in range(len(ev)):
                    alone = p1.predict(ev.batch[i])
                    if not _close(_episode(out, i), _episode(alone, 0), rtol, atol):
                        raise ConformanceError("batch-independent", f"{report.subject}: episode {i} "
                                               f"alone gets {_short(_episode(alone, 0))} but "
                                               f"{_short(_episode(out, i))} inside a batch of {len(ev)} "
                                               f"({where}; tolerance rtol={rtol}, atol={atol})")
            if "identity-invariant" in wanted:
                rule_identity_invariant(report.subject, p1, out, raw, where, rtol, atol)
            if "inputs-unmodified" in wanted:
                for pool, d in pools:
                    rule_pool_unmodified(report.subject, pool, d, "predict", wanted)
            report.settings.append((split, k))
    if not report.settings:
        reasons = "; ".join(sorted({r for _, _, r in report.skipped}))
        raise NotApplicable(f"{report.subject} declined every setting of {s.name!r}: {reasons}")
    for rule in PREDICTOR_RULES:
        if rule in wanted and rule not in report.rules:
            if rule == "frozen-weights" and not frozen or rule == "restores-weights" and frozen:
                continue
            report.passed(rule)
    return report


# -- the suite checks -----------------------------------------------------------------------------
def _same_evalset(a: EvalSet, b: EvalSet) -> str | None:
    for name in ("task_ids", "support_x", "support_y", "query_x", "shots", "split", "modality"):
        if not _close(getattr(a.batch, name), getattr(b.batch, name), 0.0, 0.0):
            return f"batch.{name}"
    for name in ("targets", "task_hashes", "episode_ids"):
        if not _close(getattr(a, name), getattr(b, name), 0.0, 0.0):
            return name
    return None


def _suite_shots(s: Any) -> list[int]:
    k = s.max_shots
    return sorted({0, min(1, k), k // 2, k})


def check_suite(suite: Any, *, episodes: int = 3, seed: int = 0,
                rules: Sequence[str] | None = None, **params: Any) -> ConformanceReport:
    """Check a suite (a registered name, a class or an instance; ``params`` as for its
    constructor, default :func:`small_suite_params`) and raise :class:`ConformanceError` naming
    the first rule it breaks.
    """
    from benchmark.registry import suite_class
    from benchmark.suite import Suite

    wanted = set(SUITE_RULES if rules is None else rules)
    unknown = wanted - set(SUITE_RULES)
    if unknown:
        raise ValueError(f"unknown rule(s) {sorted(unknown)}; known: {list(SUITE_RULES)}")
    if isinstance(suite, Suite):
        cls, params = type(suite), {**suite.params, **params}
    else:
        cls = suite_class(suite) if isinstance(suite, str) else suite
        params = params or small_suite_params(cls)

    def make() -> Any:
        return cls(**params)

    s = make()
    report = ConformanceReport(s.name or cls.__name__, s.name or cls.__name__)
    if "suite-declaration" in wanted:
        problems = []
        if not s.name:
            problems.append("`name` is empty")
        if s.modality not in MODALITIES:
            problems.append(f"modality {s.modality!r} not in {MODALITIES}")
        if not s.splits or any(x not in SPLITS for x in s.splits) or "novel" not in s.splits:
            problems.append(f"splits {s.splits!r} must be a subset of {SPLITS} including 'novel'")
        if not s.metric:
            problems.append("`metric` is empty")
        lo, hi = s.metric_range
        if not lo <= hi:
            problems.append(f"metric_range {s.metric_range!r} is not (low, high)")
        if not isinstance(s.higher_is_better, bool):
            problems.append("higher_is_better must be a bool")
        if problems:
            raise ConformanceError("suite-declaration", f"{cls.__name__}: " + "; ".join(problems))
        report.passed("suite-declaration")
    if "rejects-unknown-params" in wanted:
        try:
            cls(**params, no_such_parameter_xyz=1)
        except ValueError:
            report.passed("rejects-unknown-params")
        else:
            raise ConformanceError("rejects-unknown-params", f"{cls.__name__} accepted the unknown "
                                   "parameter 'no_such_parameter_xyz' (raise ValueError naming it)")

    pool = s.pool()
    shot_list = _suite_shots(s)
    if "deterministic" in wanted:
        pool2 = make().pool()
        for name in ("task_ids", "task_hashes", "prompt_hashes", "prompt_targets"):
            if not _close(getattr(pool, name), getattr(pool2, name), 0.0, 0.0):
                raise ConformanceError("deterministic", f"{s.name}: pool.{name} differs between two "
                                       f"constructions with the same parameters {params}")
        for name in ("support_x", "support_y", "query_x", "task_ids"):
            if not _close(getattr(pool.prompts, name), getattr(pool2.prompts, name), 0.0, 0.0):
                raise ConformanceError("deterministic", f"{s.name}: pool.prompts.{name} differs "
                                       f"between two constructions with the same parameters")
        other = make()
        for split in s.splits:
            for k in (0, s.max_shots):
                diff = _same_evalset(s.episodes(split, k, episodes, seed),
                                     other.episodes(split, k, episodes, seed))
                if diff:
                    raise ConformanceError("deterministic", f"{s.name}: episodes({split!r}, shots={k}, "
                                           f"seed={seed}) differ in {diff} between two calls")
        report.passed("deterministic")
    if "prefix-stable" in wanted:
        for split in s.splits:
            for k in (0, s.max_shots):
                few, many = s.episodes(split, k, episodes, seed), s.episodes(split, k, episodes + 3, seed)
                diff = _same_evalset(few, many.subset(range(len(few)))) if len(many) >= len(few) else "length"
                if diff:
                    raise ConformanceError("prefix-stable", f"{s.name}: episodes({split!r}, shots={k}) "
                                           f"differ in {diff} between n={episodes} and n={episodes + 3}: "
                                           "draw each episode from its own stream, e.g. "
                                           "stream(seed, name, split, 'episode', i)")
        report.passed("prefix-stable")
    if "sealed-pool" in wanted:
        writable = [a.shape for a in reachable_arrays(pool) if a.flags.writeable]
        hidden = [k for k in getattr(s, "hidden_params", ()) if k in getattr(pool, "params", {})]
        problems = []
        if writable:
            problems.append(f"{len(writable)} writable array(s) (shapes {writable[:3]}); build the pool "
                            "through TaskPool, which freezes them")
        if hidden:
            problems.append(f"hidden parameter(s) {hidden} in pool.params")
        if hasattr(pool, "run_seed"):
            problems.append("pool.run_seed is set")
        if problems:
            raise ConformanceError("sealed-pool", f"{s.name}: " + "; ".join(problems))
        report.passed("sealed-pool")
    if "novel-disjoint" in wanted:
        held = [s.episodes(x, s.max_shots, max(episodes, 8), seed) for x in s.splits
                if x in NOVEL_SPLITS]
        try:
            fingerprints = s.pool_fingerprints(pool) if hasattr(s, "pool_fingerprints") else None
            audit(pool, held, pool_hashes=fingerprints)
        except ContaminationError as exc:
            raise ConformanceError("novel-disjoint", str(exc)) from exc
        for ev in held:
            if len(set(ev.task_hashes)) == 0 or any(not h for h in ev.task_hashes):
                raise ConformanceError("novel-disjoint", f"{s.name}: {ev.batch.split} episodes "
                                       "lack task fingerprints (task_hashes), so the audit is blind")
        report.passed("novel-disjoint")
    if "memorized-in-pool" in wanted and "memorized" in s.splits:
        ev = s.episodes("memorized", s.max_shots, episodes, seed)
        content = ev.extra.get("content_hashes")
        if content is not None:
            outside = [e for e, c in zip(ev.episode_ids, content) if c not in set(pool.prompt_hashes)]
            if outside:
                raise ConformanceError("memorized-in-pool", f"{s.name}: memorized episode(s) "
                                       f"{outside[:5]} are not among the pool's offline prompts")
        pool_tasks = set(pool.task_hashes)
        if any(h not in pool_tasks for h in ev.task_hashes):
            raise ConformanceError("memorized-in-pool", f"{s.name}: memorized episodes whose task "
                                   "is not in the pool")
        report.passed("memorized-in-pool")
    from baselines.lookup import Lookup

    lookup = Lookup().fit(pool)
    lo, hi = s.metric_range
    for split in s.splits:
        for k in shot_list:
            ev = s.episodes(split, k, episodes, seed)
            where = f"split {split!r}, shots {k}"
            if "non-empty-splits" in wanted:
                b = ev.batch
                if len(ev) < 1 or len(ev) > episodes:
                    raise ConformanceError("non-empty-splits", f"{s.name}: {len(ev)} episodes for "
                                           f"n={episodes} ({where})")
                if (b.split, b.shots, b.modality) != (split, k, s.modality):
                    raise ConformanceError("non-empty-splits", f"{s.name}: batch says split "
                                           f"{b.split!r}, shots {b.shots}, modality {b.modality!r} ({where})")
                nx, ny = [len(x) for x in b.support_x], [len(y) for y in b.support_y]
                # shots counts demonstrations in most suites; a suite may give it another meaning
                # (arc: 1 = all of a task's pairs), but 0 always means none.
                if nx != ny or (k == 0 and any(nx)) or (k > 0 and min(nx) < 1):
                    raise ConformanceError("non-empty-splits", f"{s.name}: demonstrations per "
                                           f"episode x {nx}, y {ny} do not fit shots={k} ({where})")
                if any(len(q) < 1 for q in b.query_x):
                    raise ConformanceError("non-empty-splits", f"{s.name}: an episode without "
                                           f"query inputs ({where})")
            sub = _runner_view(ev, sealed=False)
            if "batch-has-no-targets" in wanted:
                leaks = batch_target_fields(sub.batch, sub.targets)
                if leaks:
                    raise ConformanceError("batch-has-no-targets", f"{s.name} ({where}): the batch "
                                           f"carries target-bearing field(s) {', '.join(leaks)}")
            if "score" in wanted:
                scores = np.asarray(s.score(sub, lookup.predict(sub.batch)), dtype=float)
                if scores.shape != (len(ev),):
                    raise ConformanceError("score", f"{s.name}: score returned shape {scores.shape}, "
                                           f"expected ({len(ev)},) ({where})")
                if not np.all(np.isfinite(scores)):
                    raise ConformanceError("score", f"{s.name}: non-finite score {scores} for the "
                                           f"lookup baseline ({where})")
                if np.any(scores < lo) or np.any(scores > hi):
                    raise ConformanceError("score", f"{s.name}: score {scores} outside "
                                           f"metric_range {s.metric_range} ({where})")
            report.settings.append((split, k))
    for rule in ("non-empty-splits", "batch-has-no-targets", "score"):
        if rule in wanted:
            report.passed(rule)
    return report


# -- one named check per rule (scikit-learn's check_estimator style) -----------------------------
def _named(rule: str) -> Callable[..., ConformanceReport]:
    def check(predictor: Any, suite: Any = "linear-regression", suite_params: dict | None = None,
              **kwargs: Any) -> ConformanceReport:
        return check_predictor(predictor, suite, suite_params, rules=[rule], **kwargs)

    check.__name__ = check.__qualname__ = "check_" + rule.replace("-", "_")
    check.__doc__ = (f"Check only the ``{rule}`` rule (arguments as :func:`check_predictor`); "
                     f"raise ConformanceError('{rule}') when the predictor breaks it.")
    return check


check_output_shape = _named("output-shape")
check_frozen_weights = _named("frozen-weights")
check_restores_weights = _named("restores-weights")
check_deterministic = _named("deterministic")
check_no_target_access = _named("no-target-access")
check_batch_independent = _named("batch-independent")
check_finite_outputs = _named("finite-outputs")
check_inputs_unmodified = _named("inputs-unmodified")
check_identity_invariant = _named("identity-invariant")
RULE_CHECKS = {r: globals()["check_" + r.replace("-", "_")] for r in PREDICTOR_RULES
               if "check_" + r.replace("-", "_") in globals()}


# -- pytest-friendly forms ------------------------------------------------------------------------
def predictor_checks(predictor: Any, suite: Any = "linear-regression", suite_params: dict | None = None,
                     **kwargs: Any) -> Iterator[tuple[str, Callable[[], ConformanceReport]]]:
    """Yield ``(rule, check)`` per predictor rule, for
    ``@pytest.mark.parametrize("rule, check", predictor_checks("my-predictor"))``; each ``check()``
    runs :func:`check_predictor` restricted to its rule (it may raise ``NotApplicable``)."""
    for rule in PREDICTOR_RULES:
        def check(rule: str = rule) -> ConformanceReport:
            return check_predictor(predictor, suite, suite_params, rules=[rule], **kwargs)
        yield rule, check


def suite_checks(suite: Any, **params: Any) -> Iterator[tuple[str, Callable[[], ConformanceReport]]]:
    """Yield ``(rule, check)`` per suite rule, as :func:`predictor_checks` does for predictors."""
    for rule in SUITE_RULES:
        def check(rule: str = rule) -> ConformanceReport:
            return check_suite(suite, rules=[rule], **params)
        yield rule, check


def conformance_cases(predictors: Sequence[str] | None = None,
                      suites: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Every registered (predictor, suite) pair whose modalities match, for parametrising tests."""
    from benchmark.registry import list_predictors, list_suites

    preds = list_predictors() if predictors is None else {n: _predictor_class(n) for n in predictors}
    suite_table = list_suites() if suites is None else {n: _resolve_cls(n) for n in suites}
    return [(p, sname) for p, pcls in preds.items() for sname, scls in suite_table.items()
            if scls.modality in getattr(pcls, "modalities", ())]


def _resolve_cls(name: str) -> type:
    from benchmark.registry import suite_class

    return suite_class(name)
