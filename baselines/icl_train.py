"""Meta-training of the in-context transformer on sequences drawn from a suite's pool only."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baselines.icl_model import ICLConfig, ICLTransformer
from baselines.icl_transformer import CARD_FORMAT, MATCHED_PARAMS, model_predict
from baselines.reference import Ridge
from benchmark.seeding import stream


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to 10% of ``lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def evaluate(model: ICLTransformer, suite: Any, n: int = 2000, seed: int = 9999,
             device: str = "cpu") -> dict:
    """Mean error of the model and of ridge at shots 1..max on novel and seen-task episodes."""
    pool = suite.pool()
    ridge = Ridge().fit(pool)
    metrics: dict[str, float] = {}
    model.eval()
    for split in ("novel", "seen-task"):
        errs, refs = {}, {}
        for k in range(1, suite.max_shots + 1):
            ev = suite.episodes(split, k, n, seed)
            errs[k] = float(suite.score(ev, model_predict(model, ev.batch, device)).mean())
            refs[k] = float(suite.score(ev, ridge.predict(ev.batch)).mean())
        mean_m, mean_r = np.mean(list(errs.values())), np.mean(list(refs.values()))
        metrics[f"{split}_mean_error"] = float(mean_m)
        metrics[f"{split}_ridge_mean_error"] = float(mean_r)
        metrics[f"{split}_ratio_to_ridge"] = float(mean_m / mean_r)
        for k in (8, 16):
            if k in errs:
                metrics[f"{split}_ratio_to_ridge_at_{k}"] = errs[k] / refs[k]
    model.train()
    return metrics


def pretrain(suite: Any, out: str | Path, steps: int = 24000, batch_size: int = 64,
             lr: float = 1e-3, warmup: int = 500, weight_decay: float = 0.0, seed: int = 0,
             width: int = 64, layers: int = 4, heads: int = 4, threads: int = 1,
             device: str = "cpu", log_every: int = 250, save_every: int = 1000,
             eval_episodes: int = 2000, init_from: str | Path | None = None,
             optima_sequences: int = 20000) -> dict:
    """Train (or resume) a checkpoint in ``out``; returns the card written next to the weights.

    ``init_from`` continues from another checkpoint's weights (same model and suite settings)
    with a fresh optimizer and schedule: a second, lower-learning-rate stage. The card records
    the final training loss beside the dMMSE and ridge optima on the pool's own training
    distribution, estimated on ``optima_sequences`` sequences (0: not recorded).
    """
    from safetensors.torch import save_file

    torch.set_num_threads(max(1, int(threads)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pool = suite.pool()
    cfg = ICLConfig(d=suite.d, max_len=suite.max_shots + 1, width=width, layers=layers, heads=heads)
    torch.manual_seed(seed)
    model = ICLTransformer(cfg).to(device)
    prior_stage = None
    if init_from is not None:
        from baselines.icl_transformer import load_checkpoint

        init_model, init_card = load_checkpoint(init_from, suite.params, device)
        if init_card["model"] != cfg.to_dict():
            raise ValueError(f"{init_from}: model {init_card['model']} differs from {cfg.to_dict()}")
        model.load_state_dict(init_model.state_dict())
        for p in model.parameters():
            p.requires_grad_(True)
        prior_stage = {k: init_card.get(k) for k in ("steps", "batch_size", "lr", "warmup",
                                                       "wall_seconds", "seed", "commit")}
        prior_stage["total_steps"] = init_card.get("total_steps", init_card.get("steps"))
        prior_stage["stages"] = init_card.get("stages", [])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    state_path, log_path = out / "train_state.pt", out / "train_log.csv"
    start, elapsed = 0, 0.0
    if state_path.exists():
        st = torch.load(state_path, map_location=device, weights_only=True)
        if st["config"] != cfg.to_dict() or st["steps"] != steps:
            raise ValueError(f"{state_path}: resumable state was made with other settings "
                             f"({st['config']}, steps={st['steps']}); delete it to start over")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        start, elapsed = int(st["step"]), float(st["elapsed"])
        print(f"resuming at step {start}", flush=True)
    elif log_path.exists() and init_from is None:
        log_path.unlink()
    # a continuation appends to the training curve, counting steps and seconds from the start
    step0 = int(prior_stage["total_steps"] or 0) if prior_stage else 0
    sec0 = float(sum(st.get("wall_seconds") or 0 for st in (prior_stage["stages"] or [prior_stage]))
                 ) if prior_stage else 0.0

    def save_state(step: int) -> None:
        tmp = state_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed + time.time() - t0, "config": cfg.to_dict(),
                    "steps": steps}, tmp)
        tmp.replace(state_path)

    t0 = time.time()
    model.train()
    running = None
    with log_path.open("a") as log:
        if log.tell() == 0:
            log.write("step,loss,lr,seconds\n")
        for step in range(start, steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, steps, lr, warmup)
            x, y = pool.sample(stream(seed, "pretrain", step), batch_size, cfg.max_len)
            xt = torch.as_tensor(x, dtype=torch.float32, device=device)
            yt = torch.as_tensor(y, dtype=torch.float32, device=device)
            loss = ((model(xt, yt) - yt) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if (step + 1) % log_every == 0 or step + 1 == steps:
                secs = elapsed + time.time() - t0
                log.write(f"{step0 + step + 1},{running:.5f},{opt.param_groups[0]['lr']:.3e},{sec0 + secs:.1f}\n")
                log.flush()
                rate = (step + 1 - start) / max(1e-9, time.time() - t0)
                print(f"step {step + 1}/{steps} loss {running:.4f} {rate:.1f} steps/s "
                      f"eta {(steps - step - 1) / max(rate, 1e-9) / 60:.1f} min", flush=True)
            if (step + 1) % save_every == 0 and step + 1 < steps:
                save_state(step + 1)
    wall = elapsed + time.time() - t0
    metrics = evaluate(model, suite, n=eval_episodes, device=device)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(out / "model.safetensors"))
    card = {
        "format": CARD_FORMAT, "suite": suite.name,
        "suite_params": {k: suite.params[k] for k in MATCHED_PARAMS},
        "model": cfg.to_dict(), "steps": steps, "batch_size": batch_size, "lr": lr,
        "warmup": warmup, "weight_decay": weight_decay, "seed": seed, "threads": threads,
        "device": device, "wall_seconds": round(wall, 1), "final_metrics": metrics,
        "eval": {"episodes_per_shot": eval_episodes, "seed": 9999, "shots": f"1..{suite.max_shots}"},
        "commit": _commit(), "torch": torch.__version__,
        "total_steps": steps, "total_wall_seconds": round(wall, 1),
    }
    if prior_stage is not None:  # a continuation: record the whole training history
        stages = prior_stage.pop("stages") or [dict(prior_stage)]
        card["stages"] = stages + [{"steps": steps, "batch_size": batch_size, "lr": lr,
                                    "warmup": warmup, "wall_seconds": round(wall, 1), "seed": seed}]
        card["total_steps"] = prior_stage["total_steps"] + steps
        card["total_wall_seconds"] = round(sum(st.get("wall_seconds") or 0 for st in card["stages"]), 1)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    if state_path.exists():
        state_path.unlink()
    try:  # the final training loss beside its optima on this training distribution
        if optima_sequences:
            card["training_losses"] = add_training_optima(out, n=optima_sequences)
    except Exception as exc:  # the checkpoint is saved; the card can be completed later
        print(f"{out}: training optima not computed ({type(exc).__name__}: {exc}); run "
              f"`python -m benchmark.transition cards` to add them", flush=True)
    print(json.dumps(metrics, indent=2), flush=True)
    return card


# -- the training distribution's optima, for the card ------------------------------------------
def training_optima(model: ICLTransformer | None, suite: Any, n: int = 20000, seed: int = 4242,
                    chunk: int = 2000, device: str = "cpu") -> dict:
    """Expected training loss on the pool's own training sequences, per position as the training
    loss averages it, of the model and of two posterior-mean predictors: dMMSE (the Bayes optimum
    for tasks uniform over the pool; None for an unlimited pool) and ridge with λ = noise (the
    Bayes optimum for w ~ N(0, I), i.e. what a learner that ignores the pool achieves).

    Position i predicts y_i from points 0..i-1 and x_i, exactly the sequences ``pretrain`` draws
    (``pool.sample``), on ``n`` fresh sequences of a fixed stream (not the training stream).
    """
    from baselines.reference import ridge_weights
    from baselines.template_regression import pool_log_posterior

    pool = suite.pool()
    length = suite.max_shots + 1
    noise = float(suite.params["noise"])
    W = pool.weights
    F = None if W is None else np.einsum("md,me->mde", W, W).reshape(len(W), -1)
    sums = {"model": 0.0, "dmmse": 0.0, "ridge": 0.0}
    for c, start in enumerate(range(0, n, chunk)):
        b = min(chunk, n - start)
        x, y = pool.sample(stream(seed, "training-optima", c), b, length)
        for i in range(length):
            X, Y, q = x[:, :i], y[:, :i], x[:, i]
            if i == 0:
                w_r = np.zeros((b, suite.d))
            else:
                w_r = ridge_weights(X, Y, max(noise, 1e-12))
            sums["ridge"] += float(((np.einsum("bd,bd->b", q, w_r) - y[:, i]) ** 2).sum())
            if W is not None:
                logits = pool_log_posterior(W, F, X, Y, noise)
                logits -= logits.max(axis=1, keepdims=True)
                p = np.exp(logits)
                p /= p.sum(axis=1, keepdims=True)
                sums["dmmse"] += float(((np.einsum("bd,bd->b", q, p @ W) - y[:, i]) ** 2).sum())
        if model is not None:
            was_training = model.training
            model.eval()
            with torch.inference_mode():
                out = model(torch.as_tensor(x, dtype=torch.float32, device=device),
                            torch.as_tensor(y, dtype=torch.float32, device=device))
            sums["model"] += float(((out.double().cpu().numpy() - y) ** 2).sum())
            model.train(was_training)
    total = n * length
    return {"sequences": n, "seed": seed, "positions": f"0..{length - 1}",
            "model": sums["model"] / total if model is not None else None,
            "dmmse": sums["dmmse"] / total if W is not None else None,
            "ridge": sums["ridge"] / total}


def final_running_loss(path: str | Path) -> float | None:
    """The last logged training loss (an exponential moving average over batches) of a checkpoint."""
    log = Path(path) / "train_log.csv"
    if not log.exists():
        return None
    lines = [ln for ln in log.read_text().splitlines()[1:] if ln.strip()]
    return float(lines[-1].split(",")[1]) if lines else None


def add_training_optima(path: str | Path, n: int = 20000, seed: int = 4242) -> dict:
    """Write ``training_losses`` into a checkpoint's card: its final training loss beside the
    dMMSE and ridge optima on its own training distribution (see :func:`training_optima`)."""
    from baselines.icl_transformer import load_checkpoint
    from benchmark.registry import get_suite

    path = Path(path)
    model, card = load_checkpoint(path)
    suite = get_suite(card["suite"], **card["suite_params"])
    losses = training_optima(model, suite, n=n, seed=seed)
    losses["final_running_loss"] = final_running_loss(path)
    card["training_losses"] = losses
    tmp = path / ".card.json.tmp"
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(path / "card.json")
    return losses
