"""The frozen in-context learner: a meta-trained transformer reading the demonstrations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baselines.icl_model import ICLConfig, ICLTransformer
from benchmark.paths import data_dir
from benchmark.predictor import NotApplicable, Predictor
from benchmark.registry import register_predictor

CARD_FORMAT = "triadbench-icl/1"
# The suite settings a checkpoint is only valid for.
MATCHED_PARAMS = ("d", "max_shots", "noise", "pool_size", "pool_seed")


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted or trained for other suite settings."""


CHECKPOINT_SETS = ("default", "transition")


def default_checkpoint(suite_params: dict, checkpoint_set: str = "default",
                       train_seed: int | None = None) -> Path:
    """Where the shipped checkpoint for these suite settings lives.

    ``"default"``: ``pool-{M}`` (one per pool size, budgets grow with M). ``"transition"``: the
    equal-budget controls ``transition/pool-{M}-seed-{s}``, trained with pool seed = training
    seed = s; ``train_seed=None`` takes s from the suite's ``pool_seed``.
    """
    root = data_dir() / "checkpoints" / "linear-regression"
    if checkpoint_set == "default":
        return root / f"pool-{suite_params['pool_size']}"
    if checkpoint_set == "transition":
        s = suite_params.get("pool_seed", 0) if train_seed is None else train_seed
        return root / "transition" / f"pool-{suite_params['pool_size']}-seed-{int(s)}"
    raise ValueError(f"icl-transformer: checkpoint_set must be one of {CHECKPOINT_SETS}, "
                     f"got {checkpoint_set!r}")


def read_card(path: Path) -> dict:
    card_path = Path(path) / "card.json"
    if not card_path.exists():
        raise CheckpointError(f"{card_path}: no checkpoint card here; train one with "
                              f"`triadbench pretrain --suite linear-regression --param pool_size=M --out {path}`")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{card_path}: not valid JSON ({exc})") from None
    if card.get("format") != CARD_FORMAT:
        raise CheckpointError(f"{card_path}: format {card.get('format')!r}, expected {CARD_FORMAT!r}")
    return card


def check_card(card: dict, suite_params: dict, where: Path) -> None:
    """Refuse a checkpoint trained under other suite settings, naming each difference."""
    trained = card.get("suite_params", {})
    diffs = [f"{k}: checkpoint {trained.get(k)!r} vs run {suite_params.get(k)!r}"
             for k in MATCHED_PARAMS if str(trained.get(k)) != str(suite_params.get(k))]
    if diffs:
        raise CheckpointError(f"{where}: checkpoint does not match the suite settings ("
                              + "; ".join(diffs) + ")")


def load_checkpoint(path: str | Path, suite_params: dict | None = None,
                    device: str = "cpu") -> tuple[ICLTransformer, dict]:
    """Load weights and card; validate the card against ``suite_params`` when given."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    card = read_card(path)
    if suite_params is not None:
        check_card(card, suite_params, path)
    model = ICLTransformer(ICLConfig(**card["model"]))
    weights = path / "model.safetensors"
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{weights}: cannot read the weights ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights}: weights do not fit the model in card.json ({exc})") from None
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, card


def query_sequences(batch: Any) -> tuple[np.ndarray, np.ndarray]:
    """Turn a batch into B*Q sequences: the demonstrations followed by one query each."""
    B, k = len(batch), batch.shots
    Q, d = batch.query_x.shape[1], batch.query_x.shape[2]
    x = np.empty((B, Q, k + 1, d))
    y = np.zeros((B, Q, k + 1))
    x[:, :, :k] = batch.support_x[:, None]
    y[:, :, :k] = batch.support_y[:, None]
    x[:, :, k] = batch.query_x
    return x.reshape(B * Q, k + 1, d), y.reshape(B * Q, k + 1)


def model_predict(model: ICLTransformer, batch: Any, device: str = "cpu") -> np.ndarray:
    """One forward pass for the whole batch; the prediction is read at each query's position."""
    x, y = query_sequences(batch)
    with torch.inference_mode():
        out = model(torch.as_tensor(x, dtype=torch.float32, device=device),
                    torch.as_tensor(y, dtype=torch.float32, device=device))[:, -1]
    return out.double().cpu().numpy().reshape(batch.query_x.shape[:2])


@register_predictor("icl-transformer")
class ICLTransformerPredictor(Predictor):
    """A transformer meta-trained on the pool, frozen at runtime: learning, if any, happens in
    its forward pass over the demonstrations.

    ``checkpoint=None`` picks ``data/checkpoints/linear-regression/pool-{pool_size}``, so a run
    over several pool sizes uses the matching checkpoint for each; ``checkpoint_set="transition"``
    picks the equal-budget multi-seed controls ``transition/pool-{M}-seed-{s}`` instead (s = the
    suite's ``pool_seed``, or ``train_seed`` when given; the card must match the pool seed).

    Example
    -------
    >>> from benchmark import get_suite
    >>> suite = get_suite("linear-regression", pool_size=4)
    >>> p = ICLTransformerPredictor().fit(suite.pool())     # doctest: +SKIP
    >>> p.predict(suite.episodes("novel", 8, 2, seed=0).batch).shape   # doctest: +SKIP
    (2, 4)
    """

    family = "in-context"
    updates_weights_at_runtime = False

    def __init__(self, checkpoint: str | None = None, device: str = "cpu",
                 checkpoint_set: str = "default", train_seed: int | None = None, threads: int = 1):
        self.checkpoint = checkpoint
        self.device = device
        self.checkpoint_set = checkpoint_set
        self.train_seed = train_seed
        self.threads = threads

    def fit(self, pool: Any) -> "ICLTransformerPredictor":
        cset = getattr(self, "checkpoint_set", "default")  # subclasses may not take these
        path = Path(self.checkpoint) if self.checkpoint else default_checkpoint(
            pool.params, cset, getattr(self, "train_seed", None))
        if not self.checkpoint and not (path / "card.json").exists():
            raise NotApplicable(f"no shipped {cset!r} checkpoint for pool_size="
                                f"{pool.params['pool_size']} (looked in {path})")
        if not self.checkpoint and getattr(self, "train_seed", None) is None:
            try:  # a shipped set without a checkpoint for these settings: not applicable here
                check_card(read_card(path), pool.params, path)
            except CheckpointError as exc:
                raise NotApplicable(f"no shipped {cset!r} checkpoint for these settings: {exc}") from None
        self.model_, self.card_ = load_checkpoint(path, pool.params, self.device)
        self.checkpoint_path_ = str(path)
        return self

    def data_files(self, suite_params: dict) -> list[Path]:
        """The checkpoint files ``fit`` loads for these suite settings (hashed into each cell's
        provenance, so a changed checkpoint recomputes its cells)."""
        path = Path(self.checkpoint) if self.checkpoint else default_checkpoint(
            suite_params, getattr(self, "checkpoint_set", "default"), getattr(self, "train_seed", None))
        return [path / "card.json", path / "model.safetensors"]

    def predict(self, batch: Any) -> np.ndarray:
        from baselines.threads import limited_threads

        # one small forward pass: on a shared 2-core CPU a second torch thread made it 5-10x
        # slower (0.50 s vs 0.05-0.09 s for 100 episodes at 16 shots)
        with limited_threads(getattr(self, "threads", 1)):
            return model_predict(self.model_, batch, self.device)
