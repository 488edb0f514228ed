"""Noisy linear regression tasks (Garg et al. 2022; Raventós et al. 2023)."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.episodes import EpisodeBatch, EvalSet
from benchmark.registry import register_suite
from benchmark.seeding import content_hash, stream
from benchmark.suite import Suite, TaskPool, freeze

UNLIMITED = "unlimited"
TASK_PRIORS = ("gaussian", "sparse")


def parse_pool_size(value: Any) -> int | None:
    """``None`` stands for an unlimited pool (a fresh task for every sequence)."""
    if value is None or (isinstance(value, str) and value.lower() in (UNLIMITED, "inf", "none")):
        return None
    bad = ValueError(f"pool_size must be a positive integer or 'unlimited', got {value!r}")
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise bad  # 1.5 is not silently 1
    try:
        m = int(value)
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    if m < 1:
        raise ValueError(f"pool_size must be >= 1 or 'unlimited', got {m}")
    return m


class LinearPool(TaskPool):
    """The pool of a linear-regression suite: task weights (unless unlimited) and a sampler."""

    def __init__(self, suite: "LinearRegression", weights: np.ndarray | None, **kw: Any):
        super().__init__(suite, **kw)
        self.weights = freeze(weights)
        self.d = int(suite.params["d"])
        self.noise = float(suite.params["noise"])
        self.pool_size = parse_pool_size(suite.params["pool_size"])

    def sample(self, rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh training sequences of ``length`` points from pool tasks (for meta-training)."""
        if self.weights is None:
            w = rng.standard_normal((n, self.d))
        else:
            w = self.weights[rng.integers(0, len(self.weights), size=n)]
        x = rng.standard_normal((n, length, self.d))
        y = np.einsum("nld,nd->nl", x, w) + np.sqrt(self.noise) * rng.standard_normal((n, length))
        return x, y


@register_suite("linear-regression")
class LinearRegression(Suite):
    """y = w·x + noise with w ~ N(0, I_d), x ~ N(0, I_d); error is squared error to w·x over d.

    The pool (``pool_size`` tasks drawn with ``pool_seed``, nested across sizes) is what the
    offline phase sees, together with ``n_prompts`` offline prompts drawn from it. The run seed
    draws the evaluation episodes; an episode keeps the same points at every shot count (the
    first ``shots`` points are the demonstrations, the last ``queries`` points the queries).

    Example
    -------
    >>> s = LinearRegression(pool_size=4)
    >>> ev = s.episodes("novel", shots=3, n=5, seed=0)
    >>> ev.batch.support_x.shape, ev.targets.shape
    ((5, 3, 8), (5, 4))
    """

    name = "linear-regression"
    modality = "vector"
    splits = ("memorized", "seen-task", "novel", "ood", "novel-orthogonal")
    # the held-out task family is part of what is tested, not something a predictor is told
    hidden_params = ("task_prior", "task_scale", "sparsity")
    metric = "mse/d"
    higher_is_better = False
    defaults = {
        "d": 8, "max_shots": 16, "noise": 0.25, "pool_size": 16, "pool_seed": 0,
        "n_prompts": 512, "queries": 4, "ood_scale": 2.0,
        # the task family of held-out tasks (novel, ood, novel-orthogonal): a shift away from
        # the pool's N(0, I) when not "gaussian" or when task_scale != 1
        "task_prior": "gaussian", "task_scale": 1.0, "sparsity": 2,
    }

    @staticmethod
    def template_unreachable(split: str, group: str) -> bool:
        """Held-out tasks of a shifted task family (``task_prior``/``task_scale``) lie outside the
        family the pool's templates were drawn from (the report's answer section reads this)."""
        return group == "shifted-family" and split in ("novel", "ood", "novel-orthogonal")

    def validate(self) -> None:
        p = self.params
        for key in ("d", "max_shots", "n_prompts", "queries"):
            if not isinstance(p[key], (int, np.integer)) or isinstance(p[key], bool):
                raise ValueError(f"suite {self.name!r}: {key} must be an integer, got {p[key]!r}")
        if p["d"] < 1:
            raise ValueError(f"suite {self.name!r}: d must be >= 1, got {p['d']}")
        if p["max_shots"] < 0:
            raise ValueError(f"suite {self.name!r}: max_shots must be >= 0, got {p['max_shots']}")
        if p["n_prompts"] < 1 or p["queries"] < 1:
            raise ValueError(f"suite {self.name!r}: n_prompts and queries must be >= 1")
        if not float(p["noise"]) >= 0:
            raise ValueError(f"suite {self.name!r}: noise (a variance) must be >= 0, got {p['noise']}")
        if not float(p["ood_scale"]) > 0:
            raise ValueError(f"suite {self.name!r}: ood_scale must be > 0, got {p['ood_scale']}")
        if p["task_prior"] not in TASK_PRIORS:
            raise ValueError(f"suite {self.name!r}: task_prior must be one of {TASK_PRIORS}, "
                             f"got {p['task_prior']!r}")
        if not float(p["task_scale"]) > 0:
            raise ValueError(f"suite {self.name!r}: task_scale must be > 0, got {p['task_scale']}")
        if (not isinstance(p["sparsity"], (int, np.integer)) or isinstance(p["sparsity"], bool)
                or not 1 <= p["sparsity"] <= p["d"]):
            raise ValueError(f"suite {self.name!r}: sparsity must be an integer in 1..d, got {p['sparsity']!r}")
        m = parse_pool_size(p["pool_size"])
        p["pool_size"] = UNLIMITED if m is None else m

    # -- generation ---------------------------------------------------------------------------
    @property
    def d(self) -> int:
        return int(self.params["d"])

    @property
    def length(self) -> int:
        return self.max_shots + int(self.params["queries"])

    def _pool_weights(self) -> np.ndarray | None:
        m = parse_pool_size(self.params["pool_size"])
        if m is None:
            return None
        return stream(self.params["pool_seed"], "linear-regression", "pool-tasks", self.d).standard_normal((m, self.d))

    def _held_out_tasks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` held-out task vectors from the suite's ``task_prior``, each with E‖w‖² = d·scale²:
        ``gaussian`` N(0, scale² I) (the pool's prior when scale = 1); ``sparse`` ``sparsity``
        nonzero N(0, d/sparsity·scale²) coordinates at random positions."""
        p = self.params
        scale = float(p["task_scale"])
        if p["task_prior"] == "gaussian":
            return scale * rng.standard_normal((n, self.d))
        s = int(p["sparsity"])
        w = np.zeros((n, self.d))
        pos = np.argsort(rng.random((n, self.d)), axis=1)[:, :s]
        np.put_along_axis(w, pos, rng.standard_normal((n, s)) * np.sqrt(self.d / s) * scale, axis=1)
        return w

    def orthogonal_basis(self) -> np.ndarray:
        """(d, d - r) orthonormal basis of the directions ``novel-orthogonal`` tasks live in.

        With M < d pool tasks: the orthogonal complement of their span (r = rank, usually M), so
        every such task is orthogonal to every pool task. With M >= d (or an unlimited pool, whose
        offline prompts' tasks stand in for the pool) the span is everything: the complement of
        the pool's top r = d // 2 principal directions (its least-represented directions).
        """
        cache = self.__dict__.setdefault("_basis_cache", {})
        if "basis" not in cache:  # one SVD per suite, not one per cell (40 ms with 512 prompts)
            W = self._pool_weights()
            if W is None:
                W = self._prompts()[1]
            _, sv, vt = np.linalg.svd(W, full_matrices=True)
            rank = int((sv > sv.max() * 1e-10).sum())
            r = rank if rank < self.d else self.d // 2
            cache["basis"] = vt[r:].T
            cache["basis"].flags.writeable = False
        return cache["basis"]

    def _points(self, rng: np.random.Generator, w: np.ndarray, scale: float = 1.0):
        n = len(w)
        x = scale * rng.standard_normal((n, self.length, self.d))
        clean = np.einsum("nld,nd->nl", x, w)
        y = clean + np.sqrt(float(self.params["noise"])) * rng.standard_normal((n, self.length))
        return x, y, clean

    def _prompts(self):
        """Offline prompts: (task index into the pool or None, weights, x, noisy y, clean y)."""
        p = self.params
        rng = stream(p["pool_seed"], "linear-regression", "prompts", self.d, p["pool_size"], self.length)
        weights = self._pool_weights()
        n = int(p["n_prompts"])
        if weights is None:
            idx = None
            w = rng.standard_normal((n, self.d))
        else:
            idx = rng.integers(0, len(weights), size=n)
            w = weights[idx]
        x, y, clean = self._points(rng, w)
        return idx, w, x, y, clean

    def pool(self) -> LinearPool:
        weights = self._pool_weights()
        idx, w, x, y, _ = self._prompts()
        k = self.max_shots
        if weights is None:
            task_w, task_ids = w, [f"pool-u{j}" for j in range(len(w))]
            prompt_task_ids = task_ids
        else:
            task_w, task_ids = weights, [f"pool-{j}" for j in range(len(weights))]
            prompt_task_ids = [f"pool-{j}" for j in idx]
        prompts = EpisodeBatch("vector", "offline", k, prompt_task_ids,
                               x[:, :k], y[:, :k], x[:, k:])
        return LinearPool(
            self, weights,
            task_ids=task_ids,
            task_hashes=[content_hash(v) for v in task_w],
            prompts=prompts, prompt_targets=y[:, k:],
            prompt_hashes=[content_hash(x[i], y[i]) for i in range(len(x))],
        )

    def _each_episode(self, key: int, split: str, n: int, task: Any, scale: float = 1.0):
        """(w, x, y, clean, task ids) of episodes 0..n-1, each drawn from its own stream.

        Episode ``i`` depends only on (key, split, i), never on ``n``: a run with more episodes
        extends a run with fewer (prefix-stable). Cached per (split, n, key) for the shot counts.
        """
        cache = self.__dict__.setdefault("_episode_cache", {})
        ck = (split, int(n), int(key), scale)
        if ck not in cache:
            ws, xs, ys, cs, tids = [], [], [], [], []
            for i in range(n):
                rng = stream(key, "linear-regression", split, self.d, "episode", i)
                w, tid = task(rng)
                x, y, clean = self._points(rng, np.asarray(w, dtype=float)[None], scale)
                ws.append(w); xs.append(x[0]); ys.append(y[0]); cs.append(clean[0]); tids.append(tid)
            shape = (0, self.d)
            stack = (lambda a, s: np.stack(a) if a else np.zeros(s))
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[ck] = (stack(ws, shape), stack(xs, (0, self.length, self.d)),
                         stack(ys, (0, self.length)), stack(cs, (0, self.length)), tids)
        w, x, y, clean, tids = cache[ck]
        return w.copy(), x, y, clean.copy(), list(tids)

    def episodes(self, split: str, shots: int, n: int, seed: int) -> EvalSet:
        self.check_splits([split])
        self.check_shots([shots])
        p, k = self.params, self.max_shots
        if split == "memorized":
            idx, w, x, y, clean = self._prompts()
            order = stream(seed, "linear-regression", "memorized").permutation(len(w))[: min(n, len(w))]
            w, x, y, clean = w[order], x[order], y[order], clean[order]
            if idx is None:
                task_ids = [f"pool-u{j}" for j in order]
            else:
                task_ids = [f"pool-{idx[j]}" for j in order]
            episode_ids = [f"prompt-{j}" for j in order]
        elif split == "seen-task":
            weights = self._pool_weights()
            if weights is None:  # unlimited pool: the tasks of the offline prompts, fresh inputs
                _, weights, _, _, _ = self._prompts()
                prefix = "pool-u"
            else:
                prefix = "pool-"

            def task(rng: np.random.Generator) -> tuple[np.ndarray, str]:
                t = int(rng.integers(0, len(weights)))
                return weights[t], f"{prefix}{t}"

            w, x, y, clean, task_ids = self._each_episode(seed, split, n, task)
            episode_ids = [f"seen-{i}" for i in range(n)]
        elif split in ("novel", "ood", "novel-orthogonal"):
            if split == "novel-orthogonal":
                # a held-out task projected onto the directions the pool does not span (see
                # orthogonal_basis), rescaled to keep E‖w‖² of the prior
                U = self.orthogonal_basis()
                project = U @ U.T * np.sqrt(self.d / U.shape[1])
            else:
                project = None

            def task(rng: np.random.Generator) -> tuple[np.ndarray, str]:
                w = self._held_out_tasks(rng, 1)[0]
                return (w if project is None else w @ project), ""

            scale = float(p["ood_scale"]) if split == "ood" else 1.0
            w, x, y, clean, _ = self._each_episode(seed, split, n, task, scale)
            task_ids = [f"{split}-{i}" for i in range(n)]
            episode_ids = [f"{split}-{i}" for i in range(n)]
        else:  # pragma: no cover - check_splits guards
            raise ValueError(split)
        # Copies, not views: a view's .base would hand predictors the query outputs.
        batch = EpisodeBatch("vector", split, shots, task_ids, x[:, :shots].copy(),
                             y[:, :shots].copy(), x[:, k:].copy())
        return EvalSet(batch, clean[:, k:], [content_hash(v) for v in w], episode_ids,
                       extra={"weights": w, "content_hashes": np.array(
                           [content_hash(x[i], y[i]) for i in range(len(x))])})

    def score(self, evalset: EvalSet, predictions: Any) -> np.ndarray:
        pred = np.asarray(predictions, dtype=float)
        if pred.shape != evalset.targets.shape:
            raise ValueError(f"predictions have shape {pred.shape}, expected {evalset.targets.shape}")
        return ((pred - evalset.targets) ** 2).mean(axis=1) / self.d
