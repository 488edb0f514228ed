"""Runtime learners: weights trained by gradient descent on one episode's demonstrations only.

Every predictor here trains one model per episode, all episodes of a batch at once (stacked
per-episode parameters, one loss that is a sum of independent per-episode losses, so autograd
yields each episode's own gradient). Every episode starts from the same initial weights, so an
episode gets the same prediction alone or inside any batch (up to float rounding in batched
matrix products: float64 for the linear model and the MLP, float32 for the transformer).

Hyperparameters left as ``None`` are chosen in :meth:`fit` from the pool alone: training
sequences drawn with ``pool.sample`` (pool tasks only) are cut into episodes at a few shot
counts, every candidate is trained on their demonstrations and scored on their held-out points,
and the candidate with the lowest mean squared error wins (``chosen_params_``).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from baselines.icl_model import ICLConfig
from baselines.icl_transformer import ICLTransformerPredictor, model_predict
from benchmark.episodes import EpisodeBatch
from benchmark.predictor import Predictor
from benchmark.registry import register_predictor
from baselines.threads import limited_threads
from benchmark.seeding import stream


# -- tuning on pool tasks ---------------------------------------------------------------------


def tuning_shots(max_shots: int, d: int) -> list[int]:
    """Shot counts the tuning episodes use: few, about d, and the most the suite shows."""
    cands = {2, max(1, d // 2), d, max_shots}
    return sorted(s for s in cands if 1 <= s <= max_shots)


def pool_tuning_set(pool: Any, n: int, seed: int, name: str) -> list[tuple[EpisodeBatch, np.ndarray]]:
    """Episodes built from pool tasks only: ``(batch, noisy query targets)`` per tuning shot count.

    Each sequence holds ``max_shots`` + ``queries`` points; the first ``shots`` are the
    demonstrations and the last ``queries`` the held-out points, as in the suite's episodes.
    """
    if not hasattr(pool, "sample"):
        raise ValueError(f"{name}: auto-tuning needs a pool with a sample(rng, n, length) method; "
                         "pass steps= and lr= explicitly")
    p = pool.params
    max_shots, q, d = int(p["max_shots"]), int(p.get("queries", 4)), int(p["d"])
    x, y = pool.sample(stream(seed, "finetune-tuning", name), n, max_shots + q)
    out = []
    for s in tuning_shots(max_shots, d):
        batch = EpisodeBatch("vector", "tuning", s, [f"tune-{i}" for i in range(n)],
                             x[:, :s], y[:, :s], x[:, max_shots:])
        out.append((batch, y[:, max_shots:]))
    return out


def grid_search(tuning: list[tuple[EpisodeBatch, np.ndarray]], lrs: Sequence[float],
                steps: Sequence[int],
                run: Callable[[EpisodeBatch, np.ndarray, list[int]], dict[int, np.ndarray]],
                ) -> tuple[dict, dict]:
    """Mean tuning error of every (steps, lr); ``run`` trains each episode of a batch with its own
    learning rate (an array, one per episode) and returns query predictions at each step count.

    All learning rates share one batched run: the batch is tiled once per learning rate.
    """
    lrs, steps = list(lrs), sorted(set(int(s) for s in steps))
    errs = {(s, lr): [] for s in steps for lr in lrs}
    for batch, targets in tuning:
        n = len(batch)
        tiled = batch[[i for _ in lrs for i in range(n)]]
        lr_per_episode = np.repeat(np.asarray(lrs, dtype=float), n)
        preds = run(tiled, lr_per_episode, steps)
        for s in steps:
            for j, lr in enumerate(lrs):
                p = preds[s][j * n:(j + 1) * n]
                errs[(s, lr)].append(float(((p - targets) ** 2).mean()))
    table = {k: float(np.mean(v)) for k, v in errs.items()}
    best = min(table, key=lambda k: (table[k], k[0]))  # ties: fewer steps
    return {"steps": best[0], "lr": best[1]}, table


class _Tuned(Predictor):
    """Shared ``fit``: keep explicit steps/lr, grid-search the ones left as ``None`` on the pool."""

    steps_grid: tuple[int, ...] = ()
    lr_grid: tuple[float, ...] = ()
    threads: int = 1  # torch/BLAS threads while training (see limited_threads)

    def _run(self, batch: EpisodeBatch, lr: np.ndarray, record: list[int]) -> dict[int, np.ndarray]:
        raise NotImplementedError

    def fit(self, pool: Any) -> "_Tuned":
        steps_grid = [self.steps] if self.steps is not None else list(self.steps_grid)
        lr_grid = [self.lr] if self.lr is not None else list(self.lr_grid)
        self.tuning_table_ = {}
        if self.steps is None or self.lr is None:
            tuning = pool_tuning_set(pool, int(self.tune_episodes), int(self.seed), self.name)
            with limited_threads(self.threads):
                best, table = grid_search(tuning, lr_grid, steps_grid, self._run)
            self.tuning_table_ = {f"steps={s},lr={lr:g}": round(e, 5) for (s, lr), e in table.items()}
        else:
            best = {"steps": self.steps, "lr": self.lr}
        self.steps_, self.lr_ = int(best["steps"]), float(best["lr"])
        self.chosen_params_ = {"steps": self.steps_, "lr": self.lr_,
                               "tuned": self.steps is None or self.lr is None}
        return self

    def _resolved(self) -> tuple[int, float]:
        steps = getattr(self, "steps_", self.steps)
        lr = getattr(self, "lr_", self.lr)
        if steps is None or lr is None:
            raise ValueError(f"{self.name}: steps and lr are 'auto' (None); call fit(pool) first "
                             "or pass them explicitly")
        return int(steps), float(lr)

    def predict(self, batch: Any) -> np.ndarray:
        steps, lr = self._resolved()
        with limited_threads(self.threads):
            return self._run(batch, np.full(len(batch), lr), [steps])[steps]


# -- linear model -----------------------------------------------------------------------------


@register_predictor("finetune-linear")
class FinetuneLinear(_Tuned):
    """A linear model, zero-initialised, trained by full-batch gradient descent on the
    demonstrations; early stopping is its only regulariser, and run long it reaches
    minimum-norm least squares (``ols``).

    The step size is ``lr / L``, where ``L`` is the largest eigenvalue of XᵀX/k of the episode's
    own demonstrations (the loss's smoothness constant), so ``0 < lr < 2`` always converges,
    whatever the input scale.

    Example
    -------
    >>> from benchmark import get_suite
    >>> ev = get_suite("linear-regression").episodes("novel", 8, 3, seed=0)
    >>> FinetuneLinear(steps=100, lr=1.0).predict(ev.batch).shape
    (3, 4)
    """

    family = "fine-tune"
    updates_weights_at_runtime = True
    steps_grid = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    lr_grid = (0.5, 1.0, 1.5)

    def __init__(self, steps: int | None = None, lr: float | None = None, seed: int = 0,
                 tune_episodes: int = 256):
        self.steps = steps
        self.lr = lr
        self.seed = seed
        self.tune_episodes = tune_episodes

    def _run(self, batch: Any, lr: np.ndarray, record: list[int]) -> dict[int, np.ndarray]:
        X = np.asarray(batch.support_x, dtype=np.float64)
        y = np.asarray(batch.support_y, dtype=np.float64)
        Xq = np.asarray(batch.query_x, dtype=np.float64)
        B, k, d = X.shape
        w = np.zeros((B, d))
        out: dict[int, np.ndarray] = {}
        if 0 in record or k == 0:
            out = {s: np.zeros(Xq.shape[:2]) for s in record}
            if k == 0:
                return out
        A = np.einsum("bkd,bke->bde", X, X) / k
        L = np.linalg.eigvalsh(A)[:, -1]
        eta = (np.asarray(lr, dtype=np.float64) / np.maximum(L, 1e-12))[:, None]
        c = np.einsum("bkd,bk->bd", X, y) / k
        for t in range(1, max(record) + 1):
            w = w - eta * ((A @ w[:, :, None])[:, :, 0] - c)  # gradient of ||Xw - y||² / 2k
            if t in record:
                out[t] = np.einsum("bqd,bd->bq", Xq, w)
        return out


# -- two-layer ReLU network -------------------------------------------------------------------


def mlp_init(d: int, hidden: int, seed: int,
             dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """One initial network, shared by every episode (He-normal first layer, zero read-out, so
    an untrained network predicts the prior mean 0)."""
    g = torch.Generator().manual_seed(int(seed))
    W1 = torch.randn(d, hidden, generator=g, dtype=torch.float64) * np.sqrt(2.0 / d)
    return {"W1": W1.to(dtype), "b1": torch.zeros(hidden, dtype=dtype),
            "w2": torch.zeros(hidden, dtype=dtype), "b2": torch.zeros((), dtype=dtype)}


def mlp_forward(P: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Stacked per-episode networks: ``x`` (B, n, d) -> (B, n)."""
    h = torch.relu(torch.baddbmm(P["b1"][:, None, :], x, P["W1"]))
    return torch.bmm(h, P["w2"][:, :, None])[..., 0] + P["b2"][:, None]


def train_mlp(x: np.ndarray, y: np.ndarray, xq: np.ndarray, lr: np.ndarray, record: list[int],
              hidden: int = 100, seed: int = 0, chunk: int = 64,
              dtype: torch.dtype = torch.float32) -> dict[int, np.ndarray]:
    """Adam on the mean squared error of each episode's demonstrations, ``chunk`` episodes at a
    time (small enough for the working set to stay in cache: ~3-10x faster than one huge batch
    on CPU). Returns the query predictions after each step count in ``record``."""
    parts = [_train_mlp_batch(x[i:i + chunk], y[i:i + chunk], xq[i:i + chunk],
                              np.asarray(lr, dtype=np.float64).reshape(-1)[i:i + chunk],
                              record, hidden, seed, dtype)
             for i in range(0, len(x), max(1, int(chunk)))]
    return {s: np.concatenate([p[s] for p in parts]).astype(np.float64) for s in record}


def _train_mlp_batch(x: np.ndarray, y: np.ndarray, xq: np.ndarray, lr: np.ndarray,
                     record: list[int], hidden: int, seed: int, dtype: torch.dtype,
                     betas: tuple[float, float] = (0.9, 0.999),
                     eps: float = 1e-8) -> dict[int, np.ndarray]:
    """Adam on the mean squared error of each episode's demonstrations, all episodes at once.

    Each parameter is one contiguous (B, ...) tensor (non-contiguous operands make CPU ``bmm``
    fall back to a slow per-episode path); the gradients of the two layers are written out by
    hand (no autograd graph) and Adam is elementwise, so every episode follows exactly the
    trajectory it would follow alone. ``lr`` holds one learning rate per episode.
    """
    xt, yt, qt = (torch.as_tensor(a, dtype=dtype) for a in (x, y, xq))
    B, k, d = xt.shape
    init = mlp_init(d, int(hidden), seed, dtype)
    P = {n: v.expand(B, *v.shape).contiguous() for n, v in init.items()}
    out: dict[int, np.ndarray] = {}
    if 0 in record or k == 0:
        pred0 = mlp_forward(P, qt).numpy()
        out = {s: pred0 for s in record} if k == 0 else {0: pred0}
        if k == 0:
            return out
    names = list(P)
    params = [P[n] for n in names]
    m = [torch.zeros_like(p) for p in params]
    v2 = [torch.zeros_like(p) for p in params]
    lr = np.asarray(lr, dtype=np.float64).reshape(-1)
    uniform = bool(np.all(lr == lr[0]))
    lr_t = torch.as_tensor(lr, dtype=dtype)
    lr_b = [lr_t.view(-1, *([1] * (p.dim() - 1))) for p in params]
    b1, b2 = betas
    xT = xt.transpose(1, 2).contiguous()
    for t in range(1, max(record) + 1):
        pre = torch.baddbmm(P["b1"][:, None, :], xt, P["W1"])            # (B, k, H)
        h = torch.relu(pre)
        f = torch.bmm(h, P["w2"][:, :, None])[..., 0] + P["b2"][:, None]
        g = (f - yt) * (2.0 / k)                                            # d loss / d f
        dpre = torch.ops.aten.threshold_backward(  # through the ReLU
            torch.bmm(g[:, :, None], P["w2"][:, None, :]), h, 0.0)
        grads = {"W1": torch.bmm(xT, dpre), "b1": dpre.sum(1),
                 "w2": torch.bmm(g[:, None, :], h)[:, 0], "b2": g.sum(1)}
        gl = [grads[n] for n in names]
        torch._foreach_lerp_(m, gl, 1 - b1)
        torch._foreach_mul_(v2, b2)
        torch._foreach_addcmul_(v2, gl, gl, value=1 - b2)
        denom = torch._foreach_sqrt(v2)
        torch._foreach_div_(denom, float(np.sqrt(1 - b2 ** t)))
        torch._foreach_add_(denom, eps)
        if uniform:
            torch._foreach_addcdiv_(params, m, denom, value=-float(lr[0]) / (1 - b1 ** t))
        else:
            num = torch._foreach_mul(m, [lb / (1 - b1 ** t) for lb in lr_b])
            torch._foreach_addcdiv_(params, num, denom, value=-1.0)
        if t in record:
            out[t] = mlp_forward(P, qt).numpy()
    return out


@register_predictor("finetune-mlp")
class FinetuneMLP(_Tuned):
    """A fresh 2-layer ReLU network per episode trained by Adam on its demonstrations
    (Garg et al.'s gradient-descent baseline).

    Example
    -------
    >>> from benchmark import get_suite
    >>> ev = get_suite("linear-regression").episodes("novel", 8, 3, seed=0)
    >>> FinetuneMLP(steps=20, lr=1e-2).predict(ev.batch).shape
    (3, 4)
    """

    family = "fine-tune"
    updates_weights_at_runtime = True
    steps_grid = (10, 25, 50, 100)
    lr_grid = (3e-3, 1e-2, 3e-2)

    def __init__(self, steps: int | None = None, lr: float | None = None, hidden: int = 100,
                 seed: int = 0, tune_episodes: int = 64, chunk: int = 64):
        self.steps = steps
        self.lr = lr
        self.hidden = hidden
        self.seed = seed
        self.tune_episodes = tune_episodes
        self.chunk = chunk

    def _run(self, batch: Any, lr: np.ndarray, record: list[int]) -> dict[int, np.ndarray]:
        return train_mlp(batch.support_x, batch.support_y, batch.query_x, lr, record,
                         hidden=int(self.hidden), seed=int(self.seed), chunk=int(self.chunk))


# -- test-time training of the meta-trained transformer ---------------------------------------

HEAD_PARAMS = ("ln_f.weight", "ln_f.bias", "read_out.weight", "read_out.bias")


def _lin(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Linear layer with shared (o, i) or per-episode (B, o, i) weights; ``h`` is (B, N, L, i)."""
    out = h @ W.transpose(-1, -2) if W.dim() == 2 else torch.einsum("bnli,boi->bnlo", h, W)
    return out + (b if b.dim() == 1 else b[:, None, None, :])


def _ln(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    h = F.layer_norm(h, h.shape[-1:], eps=1e-5)
    if w.dim() == 1:
        return h * w + b
    return h * w[:, None, None, :] + b[:, None, None, :]


def icl_trunk(cfg: ICLConfig, P: dict[str, torch.Tensor], x: torch.Tensor,
              y: torch.Tensor) -> torch.Tensor:
    """The transformer's blocks with stacked parameters: ``x`` (B, N, L, d), ``y`` (B, N, L) ->
    hidden states (B, N, L, width) before the final LayerNorm. Same maths as ``ICLTransformer``."""
    B, N, L, _ = x.shape
    prev_x = F.pad(x, (0, 0, 1, 0))[:, :, :-1]
    prev_y = F.pad(y, (1, 0))[:, :, :-1]
    tok = torch.cat([x, prev_x, prev_y.unsqueeze(-1)], dim=-1)
    pos = P["pos.weight"]
    h = _lin(tok, P["read_in.weight"], P["read_in.bias"])
    h = h + (pos[:L] if pos.dim() == 2 else pos[:, None, :L])
    W, H = cfg.width, cfg.heads
    for i in range(cfg.layers):
        pre = f"blocks.{i}."
        a = _ln(h, P[pre + "ln1.weight"], P[pre + "ln1.bias"])
        q, k, v = _lin(a, P[pre + "attn.qkv.weight"], P[pre + "attn.qkv.bias"]).split(W, dim=-1)
        q, k, v = (t.reshape(B, N, L, H, W // H).transpose(2, 3) for t in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        att = att.transpose(2, 3).reshape(B, N, L, W)
        h = h + _lin(att, P[pre + "attn.proj.weight"], P[pre + "attn.proj.bias"])
        m = _ln(h, P[pre + "ln2.weight"], P[pre + "ln2.bias"])
        m = F.gelu(_lin(m, P[pre + "mlp.0.weight"], P[pre + "mlp.0.bias"]))
        h = h + _lin(m, P[pre + "mlp.2.weight"], P[pre + "mlp.2.bias"])
    return h


def icl_head(P: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """Final LayerNorm and scalar read-out: (B, N, L, width) -> (B, N, L)."""
    h = _ln(h, P["ln_f.weight"], P["ln_f.bias"])
    return _lin(h, P["read_out.weight"], P["read_out.bias"]).squeeze(-1)


def loo_sequences(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each demonstration j: the other demonstrations (in order), then j as the query.
    ``x`` (B, k, d) -> (B, k, k, d); ``y`` (B, k) -> (B, k, k)."""
    k = x.shape[1]
    order = np.array([[i for i in range(k) if i != j] + [j] for j in range(k)], dtype=np.int64)
    return x[:, order], y[:, order]


def ttt_train(model: Any, x: np.ndarray, y: np.ndarray, xq: np.ndarray, lr: np.ndarray,
              record: list[int], trainable: str = "all", clip: float = 1.0) -> dict[int, np.ndarray]:
    """SGD from the checkpoint on each episode's leave-one-out sequences (loss read at the
    held-out demonstration), per-episode gradient-norm clipping; query predictions with all the
    demonstrations in context after each recorded step count. ``model`` is never modified."""
    cfg = model.cfg
    B, k, d = x.shape
    shared = {n: p.detach() for n, p in model.named_parameters()}
    names = list(HEAD_PARAMS) if trainable == "head" else list(shared)
    lx, ly = (torch.as_tensor(a, dtype=torch.float32) for a in loo_sequences(x, y))
    qx = np.concatenate([np.broadcast_to(x[:, None], (B, xq.shape[1], k, d)), xq[:, :, None]], axis=2)
    qy = np.concatenate([np.broadcast_to(y[:, None], (B, xq.shape[1], k)),
                         np.zeros((B, xq.shape[1], 1))], axis=2)
    qx, qy = torch.as_tensor(qx, dtype=torch.float32), torch.as_tensor(qy, dtype=torch.float32)
    lr_t = torch.as_tensor(lr, dtype=torch.float32)
    P = dict(shared)
    for n in names:
        P[n] = shared[n].expand(B, *shared[n].shape).clone().requires_grad_(True)
    head_only = trainable == "head"
    if head_only:  # the trunk is frozen: its hidden states are computed once
        with torch.no_grad():
            h_loo, h_q = icl_trunk(cfg, shared, lx, ly), icl_trunk(cfg, shared, qx, qy)

    def predict_queries() -> np.ndarray:
        with torch.no_grad():
            h = h_q if head_only else icl_trunk(cfg, P, qx, qy)
            return icl_head(P, h)[:, :, -1].double().numpy()

    out: dict[int, np.ndarray] = {}
    if 0 in record:
        out[0] = predict_queries()
    for t in range(1, max(record) + 1):
        h = h_loo if head_only else icl_trunk(cfg, P, lx, ly)
        pred = icl_head(P, h)[:, :, -1]
        loss = ((pred - ly[:, :, -1]) ** 2).mean(dim=1).sum()
        grads = torch.autograd.grad(loss, [P[n] for n in names])
        with torch.no_grad():
            norm = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in grads))
            scale = lr_t * torch.clamp(clip / (norm + 1e-6), max=1.0)
            for n, g in zip(names, grads):
                P[n].sub_(scale.view(-1, *([1] * (g.dim() - 1))) * g)
        if t in record:
            out[t] = predict_queries()
    return out


@register_predictor("ttt-transformer")
class TTTTransformer(_Tuned, ICLTransformerPredictor):
    """Test-time training: the meta-trained in-context transformer, fine-tuned per episode by a
    few SGD steps on leave-one-out sequences of its own demonstrations, then read in context.

    ``trainable="all"`` updates every weight, ``"head"`` only the final LayerNorm and read-out
    (much cheaper: the frozen trunk runs once). The loaded checkpoint is never modified; with
    fewer than 2 demonstrations or 0 steps it is exactly the frozen ``icl-transformer``.

    Example
    -------
    >>> from benchmark import get_suite
    >>> suite = get_suite("linear-regression", pool_size=4)
    >>> p = TTTTransformer(steps=2, lr=1e-2).fit(suite.pool())          # doctest: +SKIP
    >>> p.predict(suite.episodes("novel", 8, 2, seed=0).batch).shape     # doctest: +SKIP
    (2, 4)
    """

    family = "fine-tune"
    updates_weights_at_runtime = True
    steps_grid = (0, 1, 2, 4)
    lr_grid = (3e-3, 1e-2, 3e-2, 1e-1)

    def __init__(self, checkpoint: str | None = None, device: str = "cpu", steps: int | None = None,
                 lr: float | None = None, trainable: str = "head", seed: int = 0,
                 tune_episodes: int = 32, chunk: int = 128):
        self.checkpoint = checkpoint
        self.device = device
        self.steps = steps
        self.lr = lr
        self.trainable = trainable
        self.seed = seed
        self.tune_episodes = tune_episodes
        self.chunk = chunk

    def fit(self, pool: Any) -> "TTTTransformer":
        if self.trainable not in ("all", "head"):
            raise ValueError(f"ttt-transformer: trainable must be 'all' or 'head', got {self.trainable!r}")
        if self.device != "cpu":
            raise ValueError("ttt-transformer: only device='cpu' is supported")
        ICLTransformerPredictor.fit(self, pool)
        return _Tuned.fit(self, pool)

    def _run(self, batch: Any, lr: np.ndarray, record: list[int]) -> dict[int, np.ndarray]:
        if batch.shots < 2 or max(record) == 0:
            frozen = model_predict(self.model_, batch, self.device)
            return {s: frozen for s in record}
        parts = []
        for start in range(0, len(batch), max(1, int(self.chunk))):
            sl = slice(start, start + int(self.chunk))
            parts.append(ttt_train(self.model_, batch.support_x[sl], batch.support_y[sl],
                                   batch.query_x[sl], lr[sl], record, self.trainable))
        return {s: np.concatenate([p[s] for p in parts]) for s in record}
