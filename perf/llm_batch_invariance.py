"""Do smollm2-icl's answers depend on the thread count or on which episodes share a batch?

For each dtype it answers the same novel strings episodes three ways: in one call with one
thread, in one call with ``--threads`` threads, and ``--chunk`` episodes per call with one thread,
and prints how many answers match the first way. A run's answers are reproducible for its own
config either way; a dependence on the batch means another episode count or ``batch_size`` can
change a few near-tie answers (docs/llm.md, "2026-12-07 afternoon: native bfloat16"). On a CPU
without native bfloat16 the bfloat16 dtypes are emulated (slow).

    python perf/llm_batch_invariance.py --episodes 32 --dtypes bf16-mixed float32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines.hf_lm import SmolLM2InContext  # noqa: E402
from baselines.hf_model import resolve_dtype  # noqa: E402
from benchmark import get_suite  # noqa: E402


def answers(batch, dtype: str, threads: int, chunk: int | None) -> tuple[list[str], float]:
    """Every query's answer, flattened in episode order, and the wall seconds it took."""
    lm = SmolLM2InContext(dtype=dtype, threads=threads, device="cpu").fit(None)
    n = len(batch)
    step = chunk or n
    t = time.perf_counter()
    out: list[str] = []
    for i in range(0, n, step):
        for row in lm.predict(batch[list(range(i, min(i + step, n)))]):
            out += row
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--queries", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="the second thread count")
    ap.add_argument("--chunk", type=int, default=4, help="episodes per call for the split run")
    ap.add_argument("--dtypes", nargs="+", default=["auto", "float32"])
    args = ap.parse_args()
    suite = get_suite("strings", queries=args.queries, retrieval_size=max(18, 16 + args.queries))
    ev = suite.episodes("novel", args.shots, args.episodes, seed=0)
    batch = ev.view() if hasattr(ev, "view") else ev.batch
    print(f"{args.episodes} novel {args.shots}-shot episodes, {args.queries} queries each")
    for dtype in args.dtypes:
        ref, t1 = answers(batch, dtype, 1, None)
        more, tn = answers(batch, dtype, args.threads, None)
        split, ts = answers(batch, dtype, 1, args.chunk)
        n = len(ref)
        print(f"{dtype} ({resolve_dtype(dtype, 'cpu')}): one call, 1 thread {t1:.1f} s; {args.threads} threads {tn:.1f} s, "
              f"{sum(a == b for a, b in zip(ref, more))}/{n} answers the same; "
              f"{args.chunk} episodes per call {ts:.1f} s, "
              f"{sum(a == b for a, b in zip(ref, split))}/{n} the same", flush=True)


if __name__ == "__main__":
    main()
