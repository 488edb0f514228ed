"""Every registered predictor and suite passes the conformance checks; broken ones are caught."""

from __future__ import annotations

import dataclasses
import gc
import inspect

import numpy as np
import pytest

from benchmark.episodes import EvalSet
from benchmark.predictor import NotApplicable, Predictor
from benchmark.registry import list_predictors, list_suites, predictor_class
from benchmark.testing import (PREDICTOR_RULES, SUITE_RULES, ConformanceError, check_predictor,
                               check_suite, conformance_cases, predictor_checks, suite_checks)

SMALL_LR = {"d": 4, "max_shots": 4, "pool_size": 8, "n_prompts": 16}


def _needs_model(cls: type) -> bool:
    """Predictors backed by a language model (a ``model`` parameter) are slow on a CPU."""
    return "model" in cls._param_names()


def _fast_params(cls: type) -> dict:
    """Fine-tuners tune steps and lr on the pool by default; the fast run gives a short schedule."""
    names = cls._param_names()
    if cls.family == "fine-tune" and "steps" in names and "lr" in names:
        return {"steps": 2, "lr": 0.01}
    return {}


def _cases(defaults: bool) -> list:
    """Every (predictor, suite) pair; with ``defaults`` only those whose fast run used a short
    schedule, to be checked again with their default (tuned) one, as a slow test."""
    out = []
    for pname, sname in conformance_cases():
        cls = predictor_class(pname)
        if defaults and not _fast_params(cls):
            continue
        slow = defaults or _needs_model(cls)
        out.append(pytest.param(pname, sname, marks=[pytest.mark.slow] if slow else [],
                                id=f"{pname}@{sname}"))
    return out


# Suite settings with a shipped checkpoint, for predictors that need one (icl/ttt-transformer).
SHIPPED_LR = {"pool_size": 4, "n_prompts": 16}


def _check(pname: str, sname: str, params: dict) -> None:
    try:
        check_predictor(pname, sname, params=params, episodes=2)
    except NotApplicable as exc:
        if sname != "linear-regression":
            pytest.skip(f"not applicable: {exc}")
        try:  # the small settings have no checkpoint: use settings that do
            check_predictor(pname, sname, params=params, episodes=2, suite_params=SHIPPED_LR)
        except NotApplicable as exc2:
            pytest.skip(f"not applicable: {exc2}")


@pytest.mark.parametrize("pname, sname", _cases(defaults=False))
def test_registered_predictor_conforms(pname: str, sname: str) -> None:
    _check(pname, sname, _fast_params(predictor_class(pname)))


@pytest.mark.parametrize("pname, sname", _cases(defaults=True))
def test_registered_predictor_conforms_with_defaults(pname: str, sname: str) -> None:
    _check(pname, sname, {})


@pytest.mark.parametrize("sname", sorted(list_suites()))
def test_registered_suite_conforms(sname: str) -> None:
    report = check_suite(sname, episodes=2)
    assert report.rules == list(SUITE_RULES)


def test_every_registered_predictor_is_covered() -> None:
    covered = {p for p, _ in conformance_cases()}
    modalities = {cls.modality for cls in list_suites().values()}
    checkable = {n for n, cls in list_predictors().items() if set(cls.modalities) & modalities}
    assert covered == checkable and "ridge" in covered


# -- deliberately broken predictors ----------------------------------------------------------------
class _Base(Predictor):
    family = "reference"

    def _ridge(self, batch):
        if batch.shots == 0:
            return np.zeros(batch.query_x.shape[:2])
        X, y = batch.support_x, batch.support_y
        A = np.einsum("bkd,bke->bde", X, X) + np.eye(X.shape[-1])
        w = np.linalg.solve(A, np.einsum("bkd,bk->bd", X, y)[..., None])[..., 0]
        return np.einsum("bqd,bd->bq", batch.query_x, w)


class GcPeeker(_Base):
    """Finds the EvalSet holding its batch through the garbage collector and copies the targets."""

    name = "gc-peeker"

    def predict(self, batch):
        for holder in gc.get_referrers(batch):
            for ev in gc.get_referrers(holder) if isinstance(holder, dict) else [holder]:
                if isinstance(ev, EvalSet) and ev.batch is batch:
                    return np.array(ev.targets, dtype=float)
        return self._ridge(batch)


class FramePeeker(_Base):
    """Walks its callers' frames for an EvalSet with the same query inputs."""

    name = "frame-peeker"

    def predict(self, batch):
        frame = inspect.currentframe().f_back
        while frame is not None:
            for v in list(frame.f_locals.values()):
                if isinstance(v, EvalSet) and np.array_equal(v.batch.query_x, batch.query_x):
                    return np.array(v.targets, dtype=float)
            frame = frame.f_back
        return self._ridge(batch)


class BatchMean(_Base):
    """Centres its answers on the batch mean: an episode's answer depends on its batch-mates."""

    name = "batch-mean"

    def predict(self, batch):
        q = batch.query_x[..., 0]
        return q - q.mean()


class SecretUpdater(_Base):
    """Claims frozen weights but nudges them on every predict call."""

    name = "secret-updater"

    def fit(self, pool):
        self.bias_ = np.zeros(1)
        return self

    def predict(self, batch):
        out = self._ridge(batch) + self.bias_[0]
        self.bias_ += 0.1
        return out


class TorchSecretUpdater(_Base):
    """The same, with a torch module trained by one SGD step inside ``predict``."""

    name = "torch-secret-updater"

    def fit(self, pool):
        import torch

        torch.manual_seed(0)
        self.model_ = torch.nn.Linear(pool.prompts.query_x.shape[-1], 1)
        return self

    def predict(self, batch):
        import torch

        x = torch.as_tensor(batch.query_x, dtype=torch.float32)
        out = self.model_(x)[..., 0]
        out.sum().backward()
        with torch.no_grad():
            for p in self.model_.parameters():
                p -= 0.01 * p.grad
                p.grad = None
        return out.detach().double().numpy()


class WrongShape(_Base):
    name = "wrong-shape"

    def predict(self, batch):
        return self._ridge(batch).tolist()


class Noisy(_Base):
    name = "noisy"

    def predict(self, batch):
        return self._ridge(batch) + np.random.default_rng().normal(size=batch.query_x.shape[:2])


class IdHasher(_Base):
    """Shifts its answers by a hash of the episode ids it is handed (random per call)."""

    name = "id-hasher"

    def predict(self, batch):
        shift = np.array([int(t.encode().hex()[-4:], 16) % 7 for t in batch.task_ids], dtype=float)
        return self._ridge(batch) + shift[:, None]


class SplitReader(_Base):
    """Answers zero unless the batch says it is a held-out split (a leaky harness would)."""

    name = "split-reader"

    def predict(self, batch):
        out = self._ridge(batch)
        return out if batch.split in ("novel", "ood") else np.zeros_like(out)


class NaNPredictor(_Base):
    """Gives up with NaN where it has no demonstrations."""

    name = "nan-predictor"

    def predict(self, batch):
        out = self._ridge(batch)
        return out if batch.shots else np.full_like(out, np.nan)


class InputMutator(_Base):
    """Centres the demonstrations in place (changes the batch it was handed)."""

    name = "input-mutator"

    def predict(self, batch):
        if batch.shots:
            batch.support_y[...] -= batch.support_y.mean()
        return self._ridge(batch)


class PoolMutator(_Base):
    """Adds an offline prompt of its own to the shared pool."""

    name = "pool-mutator"

    def fit(self, pool):
        pool.prompt_hashes.append("mine")
        return self


class PoolArrayWriter(_Base):
    """Rescales the pool's offline targets in place (they are read-only)."""

    name = "pool-array-writer"

    def fit(self, pool):
        pool.prompt_targets *= 2
        return self


class ForgetsParam(_Base):
    """Stores its constructor argument under another name (get_params cannot find it)."""

    name = "forgets-param"

    def __init__(self, alpha=1.0):
        self.a = alpha

    def predict(self, batch):
        return self._ridge(batch)


class BadFamily(_Base):
    name = "bad-family"
    family = "magic"

    def predict(self, batch):
        return self._ridge(batch)


class StringChunkBy(_Base):
    name = "string-chunk-by"
    chunk_by = "pool_size"  # a string, not a tuple: would group cells by its letters

    def predict(self, batch):
        return self._ridge(batch)


class NegativeCost(_Base):
    name = "negative-cost"
    cost_hint = -1.0

    def predict(self, batch):
        return self._ridge(batch)


class CrashingFit(_Base):
    """Raises from fit instead of NotApplicable."""

    name = "crashing-fit"

    def fit(self, pool):
        raise RuntimeError("checkpoint not found")


class NeedsArgument(_Base):
    name = "needs-argument"

    def __init__(self, width):
        self.width = width

    def predict(self, batch):
        return self._ridge(batch)


BROKEN = [
    (GcPeeker, "no-target-access"),
    (FramePeeker, "no-target-access"),
    (BatchMean, "batch-independent"),
    (SecretUpdater, "frozen-weights"),
    (TorchSecretUpdater, "frozen-weights"),
    (WrongShape, "output-shape"),
    (Noisy, "deterministic"),
    (NeedsArgument, "constructible-with-defaults"),
    (ForgetsParam, "stores-params"),
    (BadFamily, "declares-metadata"),
    (StringChunkBy, "declares-metadata"),
    (NegativeCost, "declares-metadata"),
    (CrashingFit, "fits-on-pool"),
    (IdHasher, "identity-invariant"),
    (SplitReader, "identity-invariant"),
    (NaNPredictor, "finite-outputs"),
    (InputMutator, "inputs-unmodified"),
    (PoolMutator, "inputs-unmodified"),
    (PoolArrayWriter, "inputs-unmodified"),
]


def test_every_predictor_rule_has_a_broken_predictor() -> None:
    # restores-weights: test_updater_declaring_runtime_updates_must_restore
    assert {r for _, r in BROKEN} | {"restores-weights"} == set(PREDICTOR_RULES)


@pytest.mark.parametrize("cls, rule", BROKEN, ids=lambda v: v.name if isinstance(v, type) else v)
def test_broken_predictor_is_caught(cls: type, rule: str) -> None:
    with pytest.raises(ConformanceError) as info:
        check_predictor(cls, suite_params=SMALL_LR, shots=[0, 2])
    assert info.value.rule == rule
    assert str(info.value).startswith(f"[{rule}]")


def test_peekers_really_read_targets() -> None:
    """Guard against a vacuous test: with the real targets alive the peekers are exact."""
    from benchmark import get_suite

    suite = get_suite("linear-regression", **SMALL_LR)
    ev = suite.episodes("novel", 2, 3, seed=0).subset([0, 1, 2])
    for cls in (GcPeeker, FramePeeker):
        assert np.array_equal(cls().fit(suite.pool()).predict(ev.batch), ev.targets)


def test_updater_declaring_runtime_updates_must_restore() -> None:
    class Declared(SecretUpdater):
        name = "declared-updater"
        family = "fine-tune"
        updates_weights_at_runtime = True

    with pytest.raises(ConformanceError, match=r"^\[restores-weights\]"):
        check_predictor(Declared, suite_params=SMALL_LR, shots=[0])


def test_leaky_suite_is_caught() -> None:
    from benchmark.suites.linear_regression import LinearRegression

    class Leaky(LinearRegression):
        """Its novel tasks are the pool's tasks."""

        name = "leaky"

        def episodes(self, split, shots, n, seed):
            if split != "novel":
                return super().episodes(split, shots, n, seed)
            ev = super().episodes("seen-task", shots, n, seed)
            return dataclasses.replace(ev, batch=dataclasses.replace(ev.batch, split="novel"))

    with pytest.raises(ConformanceError, match=r"^\[novel-disjoint\]"):
        check_suite(Leaky, **SMALL_LR)


def test_nondeterministic_suite_is_caught() -> None:
    from benchmark.suites.linear_regression import LinearRegression

    class Drifting(LinearRegression):
        name = "drifting"

        def episodes(self, split, shots, n, seed):
            return super().episodes(split, shots, n, seed + np.random.default_rng().integers(1 << 30))

    with pytest.raises(ConformanceError, match=r"^\[deterministic\]"):
        check_suite(Drifting, **SMALL_LR)


def test_pytest_helpers_yield_one_check_per_rule() -> None:
    checks = dict(predictor_checks("ridge", suite_params=SMALL_LR, shots=[0, 1], episodes=2))
    assert list(checks) == list(PREDICTOR_RULES)
    assert checks["batch-independent"]().rules == ["constructible-with-defaults",
                                                    "batch-independent"]
    with pytest.raises(ConformanceError, match="batch-independent"):
        dict(predictor_checks(BatchMean, suite_params=SMALL_LR, shots=[0]))["batch-independent"]()
    assert list(dict(suite_checks("linear-regression", **SMALL_LR))) == list(SUITE_RULES)


def test_each_rule_has_its_own_named_check() -> None:
    from benchmark import testing

    for rule in ("output-shape", "deterministic", "no-target-access", "finite-outputs",
                 "inputs-unmodified", "identity-invariant"):
        check = getattr(testing, "check_" + rule.replace("-", "_"))
        assert check.__name__ == "check_" + rule.replace("-", "_")
        assert check("ridge", suite_params=SMALL_LR, shots=[0, 2]).rules[-1] == rule
    with pytest.raises(ConformanceError, match=r"^\[identity-invariant\]"):
        testing.check_identity_invariant(IdHasher, suite_params=SMALL_LR, shots=[2])
    with pytest.raises(ConformanceError, match=r"^\[finite-outputs\]"):
        testing.check_finite_outputs(NaNPredictor, suite_params=SMALL_LR, shots=[0])


def test_strings_predictor_reading_task_ids_breaks_identity_invariance() -> None:
    from benchmark.suites.strings import apply_rule

    class RuleFromId(Predictor):
        name, family, modalities = "rule-from-id", "reference", ("string",)

        def predict(self, batch):
            return [[apply_rule(t.split("/", 1)[1], q) or "" if t.startswith("familiar-rules/") else ""
                     for q in qs] for t, qs in zip(batch.task_ids, batch.query_x)]

    with pytest.raises(ConformanceError, match=r"^\[identity-invariant\]"):
        check_predictor(RuleFromId, "strings", shots=[0], episodes=3)


def test_state_snapshot_digests_arrays_inside_containers_and_skips_scalars():
    from benchmark.testing import state_snapshot

    class P:
        pass

    p = P()
    p.table_ = {f"k{i}": float(i) for i in range(1000)} | {"w": np.arange(3.0), "none": None}
    p.layers_ = [1, "a", (np.ones(2), 2.0)]
    snap = state_snapshot(p)
    assert set(snap) == {"table_['w']", "layers_[2][0]"}
    p.table_["w"][0] = 5.0
    after = state_snapshot(p)
    assert after["table_['w']"] != snap["table_['w']"] and after["layers_[2][0]"] == snap["layers_[2][0]"]
