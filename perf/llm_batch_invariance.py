"""Do smollm2-icl's answers depend on the thread count or on which episodes share a batch?

For each dtype it answers the same novel strings episodes three ways: in one call with one
thread, in one call with ``--threads`` threads, and ``--chunk`` episodes per call with one thread,
and prints how many answers match the first way. A run's answers are reproducible for its own
config either way; a dependence on the batch means another episode count or ``batch_size`` can
change a few near-tie answers (docs/llm.md, "2026-12-07 afternoon: native bfloat16"). On a CPU
without native bfloat16 the bfloat16 dtypes are emulated (slow). Two checks of where such a
dependence comes from are printed first: whether a bfloat16 linear map gives a row the same bits
whatever the number of rows beside it, and how far left padding moves float32 hidden states.

    python perf/llm_batch_invariance.py --episodes 32 --dtypes bf16-mixed float32
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
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


def product_rows_invariant(rows: Sequence[int] = (1, 3, 7, 16, 33, 64, 100, 128, 200)) -> bool:
    """Whether a bfloat16 ``F.linear`` (SmolLM2's MLP shape) gives each of the first ``m`` rows the
    bits it gives them inside a 300-row product, for every ``m`` in ``rows``."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    w = torch.randn(1536, 576, generator=g).bfloat16()
    x = torch.randn(300, 576, generator=g).bfloat16()
    full = F.linear(x, w)
    return all(torch.equal(F.linear(x[:m], w), full[:m]) for m in rows)


def padding_drift(pads: Sequence[int] = (1, 7, 40), length: int = 120) -> list[tuple[int, float, float]]:
    """For each left padding, the share of a float32 prompt's last hidden states that differ from
    the unpadded ones, and the largest difference: (pad, share, max abs)."""
    import torch

    from baselines.hf_model import load_causal_lm

    base = load_causal_lm(None, dtype="float32", device="cpu")[0].model
    ids = torch.randint(100, 5000, (1, length), generator=torch.Generator().manual_seed(0))

    def hidden(pad: int):
        x = torch.cat([torch.zeros(1, pad, dtype=torch.long), ids], 1)
        m = torch.ones_like(x)
        m[:, :pad] = 0
        with torch.no_grad():
            h = base(input_ids=x, attention_mask=m, position_ids=(m.cumsum(-1) - 1).clamp(min=0))
        return h.last_hidden_state[:, pad:]

    ref = hidden(0)
    out = []
    for pad in pads:
        d = hidden(pad) - ref
        out.append((pad, (d != 0).float().mean().item(), d.abs().max().item()))
    return out


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
    batch = ev.view()  # what a predictor is handed
    import torch

    torch.set_num_threads(1)
    print(f"bfloat16 products give each row the same bits with 1 to 300 rows: {product_rows_invariant()}")
    for pad, share, top in padding_drift():
        print(f"float32, {pad} tokens of left padding: {share:.1%} of the last hidden states differ, "
              f"by at most {top:.2g}")
    print(f"{args.episodes} novel {args.shots}-shot episodes, {args.queries} queries each")
    for dtype in args.dtypes:
        ref, t1 = answers(batch, dtype, 1, None)
        more, tn = answers(batch, dtype, args.threads, None)
        split, ts = answers(batch, dtype, 1, args.chunk)
        n = len(ref)
        print(f"{dtype} ({resolve_dtype(dtype, 'cpu')}): one call, 1 thread {t1:.1f} s; "
              f"{args.threads} threads {tn:.1f} s, "
              f"{sum(a == b for a, b in zip(ref, more))}/{n} answers the same; "
              f"{args.chunk} episodes per call {ts:.1f} s, "
              f"{sum(a == b for a, b in zip(ref, split))}/{n} the same", flush=True)


if __name__ == "__main__":
    main()
