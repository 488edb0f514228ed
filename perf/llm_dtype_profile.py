"""Where one SmolLM2 forward spends its CPU time in each LM dtype: matrix products vs the rest.

The basis of docs/llm.md's estimate of bf16-mixed against all-bfloat16 on native hardware: the
products are what a bfloat16 matrix unit speeds up; the rest (norms, attention, casts) it does
not. On a CPU without native bfloat16 the bfloat16 products are emulated, so read only the
"other" column there. One thread, a batch of random token ids, the second of two forwards.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from baselines.hf_model import load_causal_lm  # noqa: E402

PRODUCTS = {"aten::mm", "aten::addmm", "aten::bmm"}
CASTS = {"aten::copy_", "aten::_to_copy"}


def profile_forward(dtype: str, ids: torch.Tensor) -> dict[str, float]:
    """Self CPU seconds of one forward, split into products, casts and everything."""
    base = load_causal_lm(None, dtype)[0].model
    with torch.inference_mode():
        base(input_ids=ids, use_cache=True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            base(input_ids=ids, use_cache=True)
    events = prof.key_averages()

    def secs(keys: set | None) -> float:
        return sum(e.self_cpu_time_total for e in events if keys is None or e.key in keys) / 1e6

    return {"total": secs(None), "products": secs(PRODUCTS), "casts": secs(CASTS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--dtypes", default="float32,bfloat16,bf16-mixed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}; {args.rows} x {args.tokens} tokens")
    ids = torch.randint(100, 40000, (args.rows, args.tokens), generator=torch.Generator().manual_seed(0))
    for dtype in args.dtypes.split(","):
        t = profile_forward(dtype, ids)
        print(f"{dtype:11s} total {t['total']:.2f} s  products {t['products']:.2f} s  "
              f"other {t['total'] - t['products']:.2f} s (of which casts {t['casts']:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
