"""Batched per-episode fine-tuning vs a per-episode Python loop, measured in the same run.

Trains ``finetune-mlp`` (2-layer ReLU net, Adam) on 1,024 linear-regression episodes twice:
once as one batched call (``FinetuneMLP.predict`` on the whole batch) and once calling the same
predictor on one episode at a time. Prints both timings (wall and process CPU time, since the
machine may be shared), their ratio, and the largest difference between the two predictions.

Run: ``.venv/bin/python perf/finetune_batched.py [--episodes 1024 --steps 100 --shots 16]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from baselines.finetune import FinetuneMLP
from benchmark import get_suite


def timed(fn):
    """Run ``fn`` once; return its result, wall seconds and process CPU seconds."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ev = get_suite("linear-regression").episodes("novel", args.shots, args.episodes, seed=0)
    pred = FinetuneMLP(steps=args.steps, lr=args.lr)
    pred.predict(ev.batch[:8])  # warm-up: first-call allocations and dispatch caches

    batched, bw, bc = timed(lambda: pred.predict(ev.batch))
    looped, lw, lc = timed(lambda: np.concatenate([pred.predict(ev.batch[i])
                                                    for i in range(len(ev))]))
    print(f"finetune-mlp: {args.episodes} episodes, {args.shots} shots, {args.steps} Adam steps, "
          f"hidden {pred.hidden}, {args.threads} thread(s)")
    print(f"batched : wall {bw:8.2f} s   cpu {bc:8.2f} s")
    print(f"looped  : wall {lw:8.2f} s   cpu {lc:8.2f} s")
    print(f"speed-up: wall {lw / bw:6.1f}x   cpu {lc / bc:6.1f}x")
    print(f"max |batched - looped| = {np.abs(batched - looped).max():.3g}")


if __name__ == "__main__":
    main()
