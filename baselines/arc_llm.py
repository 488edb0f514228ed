"""SmolLM2 on ARC grids: frozen in-context (``arc-smollm2-icl``) and LoRA test-time training.

Grids are written as rows of digits without spaces, one row per line; a prompt is every
demonstration (``Input:`` grid, ``Output:`` grid) then the query's ``Input:`` grid and
``Output:``. The generated text is parsed back into a grid (rows up to the first blank line).
An episode whose prompt plus expected answer would exceed ``max_tokens`` is reported as skipped
(``NotApplicable`` with the token count), never silently dropped. Model loading, generation and
LoRA come from :mod:`baselines.hf_model` (the string suites' engineer's code, reused unchanged).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from baselines.threads import limited_threads
from benchmark.predictor import NotApplicable, Predictor
from benchmark.registry import register_predictor


class OverBudgetInBatch(RuntimeError):
    """Some episodes of a batch are over the token budget: the runner then retries one by one."""


def grid_text(g: Any) -> str:
    """``[[1, 2], [3, 4]]`` -> ``"12\\n34"``."""
    return "\n".join("".join(str(int(v)) for v in row) for row in np.asarray(g).tolist())


def parse_grid(text: str) -> list[list[int]] | None:
    """The grid at the start of ``text`` (digit rows up to the first blank or non-digit line)."""
    rows: list[list[int]] = []
    for line in text.strip("\n").split("\n"):
        line = line.strip()
        if not line or not line.isdigit():
            break
        rows.append([int(c) for c in line])
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    return rows


def task_prompt(demos: Sequence[tuple[Any, Any]], query: Any) -> str:
    parts = [f"Input:\n{grid_text(x)}\nOutput:\n{grid_text(y)}\n\n" for x, y in demos]
    return "".join(parts) + f"Input:\n{grid_text(query)}\nOutput:\n"


@register_predictor("arc-smollm2-icl")
class ArcSmolLM2InContext(Predictor):
    """Frozen SmolLM2-135M-Instruct completing a grid prompt (greedy, one attempt per test input).

    Example
    -------
    >>> p = ArcSmolLM2InContext(max_tokens=2048)
    >>> p.get_params()["max_tokens"]
    2048
    """

    family = "in-context"
    cost_hint = 5.0
    modalities = ("grid",)

    def __init__(self, model: str | None = None, max_tokens: int = 1024, threads: int | str = "auto",
                 dtype: str = "auto", device: str = "auto"):
        self.model = model
        self.max_tokens = max_tokens
        self.threads = threads
        self.dtype = dtype
        self.device = device

    def data_files(self, suite_params: dict) -> list:
        """The model file or folder ``fit`` loads (hashed into each cell's provenance)."""
        from pathlib import Path

        from baselines.hf_model import smollm2_gguf_path

        try:
            return [Path(self.model) if self.model else smollm2_gguf_path()]
        except FileNotFoundError:  # fit reports the missing model as not applicable
            return []

    def fit(self, pool: Any) -> "ArcSmolLM2InContext":
        """Load the model (cached per process); learns nothing from the pool.

        ``dtype``/``device``/``threads`` ``"auto"``: bfloat16 products where native, a CUDA GPU when
        visible, the idle cores (see :mod:`baselines.hf_lm`); the choices are ``chosen_params_``.
        """
        from baselines.hf_model import choose_runtime, load_causal_lm

        if not isinstance(self.max_tokens, int) or self.max_tokens < 16:
            raise ValueError(f"{self.name}: max_tokens must be an integer >= 16, got {self.max_tokens!r}")
        choose_runtime(self)
        with limited_threads(self.threads_):
            self.lm_, self.tok_ = load_causal_lm(self.model or "smollm2", dtype=self.dtype_,
                                                 device=self.device_)
        return self

    # -- budget -------------------------------------------------------------------------------
    def _n_tokens(self, text: str) -> int:
        return len(self.tok_(text, add_special_tokens=False)["input_ids"])

    def _plan(self, demos: list, queries: Sequence[Any]) -> tuple[list[str], list[int]] | str:
        """Prompts and generation lengths, or the reason the episode is over budget."""
        prompts, lengths = [], []
        for q in queries:
            p = task_prompt(demos, q)
            # the answer is at most as large as the largest demonstration output or the query
            sizes = [np.asarray(y).shape for _, y in demos] + [np.asarray(q).shape]
            h = max(s[0] for s in sizes)
            w = max(s[1] for s in sizes)
            gen = self._n_tokens(grid_text(np.zeros((h, w), dtype=int))) + 4
            used = self._n_tokens(p) + gen
            if used > self.max_tokens:
                return f"over the token budget: {used} tokens > max_tokens={self.max_tokens}"
            prompts.append(p)
            lengths.append(gen)
        return prompts, lengths

    def _generate(self, lm: Any, prompt: str, max_new: int) -> list[list[int]] | None:
        from baselines.hf_model import generate

        text = generate(lm, self.tok_, [prompt], max_new_tokens=max_new, batch_size=1,
                        stop_at_newline=False)[0]
        return parse_grid(text)

    def _episode(self, lm: Any, prompts: list[str], lengths: list[int]) -> list[list]:
        out = []
        for p, n in zip(prompts, lengths):
            g = self._generate(lm, p, n)
            out.append([g] if g is not None else [])
        return out

    def _plans(self, batch: Any) -> list:
        plans = [self._plan(list(zip(sx, sy)), qx)
                 for sx, sy, qx in zip(batch.support_x, batch.support_y, batch.query_x)]
        over = [i for i, p in enumerate(plans) if isinstance(p, str)]
        if over and len(batch) == 1:
            raise NotApplicable(f"episode {batch.task_ids[0]} (an opaque id): {plans[0]}")
        if over:
            raise OverBudgetInBatch(f"{len(over)} of {len(batch)} episodes over max_tokens={self.max_tokens}; "
                                    "answer them one at a time")
        return plans

    def predict(self, batch: Any) -> list:
        with limited_threads(self.threads_):
            return self._predict(batch)

    def _predict(self, batch: Any) -> list:
        return [self._episode(self.lm_, *plan) for plan in self._plans(batch)]


@register_predictor("arc-smollm2-lora-ttt")
class ArcSmolLM2LoraTTT(ArcSmolLM2InContext):
    """Test-time training on ARC: fresh LoRA adapters fitted on each task's demonstrations.

    Each demonstration becomes a training example (the other demonstrations as context, loss on
    its output grid); the adapted model then completes the full prompt; adapters are removed after
    every task.

    Example
    -------
    >>> ArcSmolLM2LoraTTT(steps=8).get_params()["steps"]
    8
    """

    family = "fine-tune"
    updates_weights_at_runtime = True
    cost_hint = 30.0

    def __init__(self, model: str | None = None, max_tokens: int = 1024, threads: int | str = "auto",
                 dtype: str = "auto", device: str = "auto", steps: int = 8, lr: float = 3e-3,
                 rank: int = 8, seed: int = 0):
        super().__init__(model, max_tokens, threads, dtype, device)
        self.steps = steps
        self.lr = lr
        self.rank = rank
        self.seed = seed

    def _predict(self, batch: Any) -> list:
        from baselines.hf_model import lora_adapter

        out = []
        for plan, sx, sy in zip(self._plans(batch), batch.support_x, batch.support_y):
            demos = list(zip(sx, sy))
            if not demos:
                out.append(self._episode(self.lm_, *plan))
                continue
            train_p = [task_prompt(demos[:i] + demos[i + 1:], x) for i, (x, _) in enumerate(demos)]
            train_a = [grid_text(y) + "\n\n" for _, y in demos]
            with lora_adapter(self.lm_, self.tok_, train_p, train_a, steps=int(self.steps), lr=float(self.lr),
                              rank=int(self.rank), alpha=2 * int(self.rank), batch_size=2,
                              seed=int(self.seed)) as adapted:
                out.append(self._episode(adapted, *plan))
        return out
