"""The fast LM path: many episodes per forward pass, each episode's demonstrations run once.

- :func:`generate_grouped`: greedy answers for groups of prompts that share a prefix (one group
  per episode: its demonstrations, then one prompt per query). The shared tokens are run once per
  group and their key/value cache is copied to every query row; all groups of a chunk are padded
  into one batch. The vocabulary projection runs in float32 on the last position only, so a
  bfloat16 model's argmax is not decided by bfloat16 logit rounding.
- :class:`BatchedLoRA`: per-episode LoRA adapters stacked along a leading episode axis and
  attached by forward hooks; each batch row uses its own episode's adapter, so one
  forward/backward trains many episodes at once. Adapter weights, their maths and the loss are
  float32 whatever the base model's dtype.
- :func:`train_lora_batched`: the training loop, per episode identical to
  :func:`baselines.hf_model.lora_adapter` (same initial adapters, minibatches, loss, gradient
  clipping and AdamW), so batched and one-episode-at-a-time training give the same adapters.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any, Sequence

from baselines.hf_model import _newline_token_ids, encode, prepare_tokenizer

__all__ = ["generate_grouped", "BatchedLoRA", "train_lora_batched", "lora_targets"]


def _head32(model: Any) -> tuple[Any, Any]:
    """The output projection as float32 (weight, bias), cached on the model."""
    import torch

    head = model.get_output_embeddings()
    w = head.weight
    cached = getattr(model, "_triad_head32", None)
    if cached is not None and cached[0] is w and cached[1].device == w.device:
        return cached[2], cached[3]
    w32 = w.detach().float() if w.dtype != torch.float32 else w.detach()
    b = getattr(head, "bias", None)
    b32 = b.detach().float() if b is not None else None
    model._triad_head32 = (w, w32, w32, b32)
    return w32, b32


def _logits32(model: Any, h: Any) -> Any:
    """float32 logits of hidden states ``h`` (..., hidden)."""
    w, b = _head32(model)
    out = h.float() @ w.T
    return out + b if b is not None else out


def _decoder(model: Any) -> Any:
    """The model's decoder stack (what runs without the output projection), or None."""
    return model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "model", None)


def _positions(mask: Any) -> Any:
    """Position ids of left-padded rows: each real token's rank, 0 on padding."""
    return (mask.cumsum(1) - 1).clamp(min=0)


def _length_buckets(sizes: Sequence[int], ratio: float, max_tokens: int | None = None) -> list[list[int]]:
    """Indices longest first, cut into buckets whose members are at least ``ratio`` times the
    bucket's longest (and, with ``max_tokens``, at most that many padded tokens in all).

    >>> _length_buckets([3, 10, 9, 4], ratio=0.8)
    [[1, 2], [3], [0]]
    >>> _length_buckets([10, 9, 9], ratio=0.8, max_tokens=20)
    [[0, 1], [2]]
    """
    buckets: list[list[int]] = []
    for k in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        top = sizes[buckets[-1][0]] if buckets else 0
        if (not buckets or sizes[k] < ratio * top
                or (max_tokens is not None and (len(buckets[-1]) + 1) * top > max_tokens)):
            buckets.append([])
        buckets[-1].append(k)
    return buckets


def _lcp(seqs: Sequence[Sequence[int]]) -> int:
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = seqs[0][i]
        if any(s[i] != t for s in seqs):
            return i
    return n


def generate_grouped(model: Any, tok: Any, groups: Sequence[Sequence[str]], max_new_tokens: int = 16,
                     batch_rows: int = 128, stop_at_newline: bool = True,
                     lora: "BatchedLoRA | None" = None,
                     lora_index: Sequence[int] | None = None,
                     max_batch_tokens: int = 24576,
                     margins: list | None = None, shared_prefix: bool = True,
                     pack: bool = True) -> list[list[str]]:
    """Greedy continuations for groups of prompts; each group's common token prefix runs once.

    Groups are answered in chunks of at most ``batch_rows`` prompts and ``max_batch_tokens``
    cached tokens (rows x longest prompt, which bounds the key/value cache: about 23 kB per
    token for SmolLM2-135M in bfloat16). Larger chunks cost less CPU per answer (measured: 128
    rows used 0.6x the CPU time of 32 on 0-shot prompts).
    Prompts are tokenized whole (no boundary differs from one-prompt tokenization). With ``lora``
    attached, the rows of group ``g`` use adapter ``lora_index[g]`` (default ``g``). Returns one list of answers per group,
    each cut at the first newline like :func:`baselines.hf_model.generate`.
    With a list ``margins``, it is filled with one list per group: for each prompt, the smallest
    gap between the top two float32 logits over its generated tokens (how near greedy decoding
    came to a tie; ``perf/llm_throughput.py`` uses it to show bf16-vs-float32 disagreements are
    near-ties).
    With ``shared_prefix`` (default) a Llama-style model's query rows read their group's prefix
    cache in place (:class:`_SharedPrefix`); other models, or ``shared_prefix=False``, copy the
    prefix cache to every row and run the model's own forward. With ``pack`` (default; not with
    ``lora``) that path's query pass computes projections and MLPs on real tokens only, not on
    the left padding (the same answers; ``perf/llm_throughput.py --also-unpacked`` times both).
    """
    import torch

    prepare_tokenizer(tok)
    stop = set([tok.eos_token_id] if tok.eos_token_id is not None else [])
    if stop_at_newline:
        stop |= set(_newline_token_ids(tok))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    dev = model.device
    # Plan: per group, the shared prefix and one suffix per prompt (at least one token each).
    plans = []
    for g, prompts in enumerate(groups):
        ids = [encode(tok, p) for p in prompts]
        if any(not x for x in ids):
            raise ValueError("generate_grouped: a prompt has no tokens")
        c = min(_lcp(ids), min(len(x) for x in ids) - 1) if ids else 0
        adapter = lora_index[g] if lora_index is not None else g
        plans.append((g, ids[0][:c] if ids else [], [x[c:] for x in ids], adapter))
    out: list[list[str]] = [[""] * len(p) for p in groups]
    gaps: list[list[float]] = [[float("inf")] * len(p) for p in groups]
    order = sorted((p for p in plans if p[2]), key=lambda p: (len(p[1]) > 0, len(p[1])), reverse=True)
    chunks, cur, rows, longest = [], [], 0, 0
    for p in order:
        n = len(p[2])
        size = len(p[1]) + max(len(x) for x in p[2]) + max_new_tokens
        if cur and (rows + n > batch_rows or (len(cur[0][1]) > 0) != (len(p[1]) > 0)
                    or (rows + n) * max(longest, size) > max_batch_tokens):
            chunks.append(cur)
            cur, rows, longest = [], 0, 0
        cur.append(p)
        rows += n
        longest = max(longest, size)
    if cur:
        chunks.append(cur)
    with torch.no_grad():
        for chunk in chunks:
            texts, chunk_gaps = _generate_chunk(model, tok, chunk, max_new_tokens, stop, pad, dev, lora,
                                                shared_prefix, pack)
            for (g, *_), t, m in zip(chunk, texts, chunk_gaps):
                out[g] = [x.split("\n")[0] if stop_at_newline else x for x in t]
                gaps[g] = m
    if margins is not None:
        margins[:] = gaps
    return out


def _left_pad(seqs: Sequence[Sequence[int]], pad: int, dev: Any) -> tuple[Any, Any]:
    import torch

    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, L - len(s):] = torch.tensor(s)
            mask[i, L - len(s):] = 1
    return ids.to(dev), mask.to(dev)


def _generate_chunk(model: Any, tok: Any, chunk: list, max_new: int, stop: set, pad: int, dev: Any,
                    lora: "BatchedLoRA | None", shared: bool = True,
                    pack: bool = True) -> tuple[list[list[str]], list[list[float]]]:
    import torch

    base = _decoder(model)
    groups = [a for _, _, _, a in chunk]  # the adapter of each group
    row_group = [j for j, (_, _, sufs, _) in enumerate(chunk) for _ in sufs]
    rg = torch.tensor(row_group, device=dev)
    shared = shared and _SharedPrefix.supports(model)
    cache, prefix_mask = None, torch.zeros((len(chunk), 0), dtype=torch.long, device=dev)
    if len(chunk[0][1]) > 0:  # the shared prefixes, once per group
        prefixes = [p for _, p, _, _ in chunk]
        if shared:
            cache, prefix_mask = _prefix_kv(base, prefixes, groups, pad, dev, lora)
        else:
            ids, prefix_mask = _left_pad(prefixes, pad, dev)
            pos = _positions(prefix_mask)
            if lora is not None:
                lora.rows = torch.tensor(groups, device=dev)
            cache = base(input_ids=ids, attention_mask=prefix_mask, position_ids=pos, use_cache=True).cache
    plen = prefix_mask.sum(1)[rg]
    sufs = [s for _, _, ss, _ in chunk for s in ss]
    ids, smask = _left_pad(sufs, pad, dev)
    pos = plen.unsqueeze(1) + _positions(smask)
    if lora is not None:
        lora.rows = torch.tensor([groups[j] for j in row_group], device=dev)
    if shared:
        step: Any = _SharedPrefix(model, cache, prefix_mask.bool(), rg, ids.shape[1] + max_new,
                                  pack=pack and lora is None)
    else:
        step = _HFSteps(base, cache, rg, prefix_mask[rg])
    h = step.first(ids, smask, pos)
    last_pos = pos[:, -1]
    n = len(sufs)
    gen: list[list[int]] = [[] for _ in range(n)]
    active = torch.arange(n, device=dev)
    stop_t = torch.tensor(sorted(stop), device=dev) if stop else None
    gap = torch.full((n,), float("inf"), device=dev)
    for t in range(max_new):
        logits = _logits32(model, h)
        nxt = logits.argmax(-1)  # argmax, not topk: the same tie-breaking as generate()
        top2 = logits.topk(2, dim=-1).values
        gap[active] = torch.minimum(gap[active], top2[:, 0] - top2[:, 1])
        for r, v in zip(active.tolist(), nxt.tolist()):
            gen[r].append(v)
        done = torch.isin(nxt, stop_t) if stop_t is not None else torch.zeros_like(nxt, dtype=torch.bool)
        if t == max_new - 1 or bool(done.all()):
            break
        keep = (~done).nonzero().squeeze(1)
        if len(keep) < len(active):
            step.keep(keep)
            active, nxt, last_pos = active[keep], nxt[keep], last_pos[keep]
        last_pos = last_pos + 1
        if lora is not None:
            lora.rows = torch.tensor([groups[row_group[r]] for r in active.tolist()], device=dev)
        h = step.next(nxt, last_pos)
    texts = [tok.decode(g, skip_special_tokens=True) for g in gen]
    gaps = gap.tolist()
    out, out_gaps, i = [], [], 0
    for _, _, ss, _ in chunk:
        out.append(texts[i:i + len(ss)])
        out_gaps.append(gaps[i:i + len(ss)])
        i += len(ss)
    return out, out_gaps


def _prefix_kv(base: Any, prefixes: list, adapters: list, pad: int, dev: Any,
               lora: "BatchedLoRA | None", max_tokens: int = 4096) -> tuple[list, Any]:
    """Every group's prefix keys and values, left-padded into one (groups, kv heads, length, d)
    tensor per layer, and the (groups, length) mask.

    Computed in sub-batches of similar length and at most ``max_tokens`` padded tokens: one
    padded batch of all prefixes wasted ~40% of its work on padding (prompts of 150-330 tokens),
    and activations this small are reused by the allocator instead of being mapped afresh.
    """
    import torch

    buckets = _length_buckets([len(p) for p in prefixes], 0.85, max_tokens)
    L = len(prefixes[buckets[0][0]])
    mask = torch.zeros((len(prefixes), L), dtype=torch.long, device=dev)
    kv: list = []
    for idx in buckets:
        lb = len(prefixes[idx[0]])
        ids, m = _left_pad([prefixes[g] for g in idx], pad, dev)
        pos = _positions(m)
        if lora is not None:
            lora.rows = torch.tensor([adapters[g] for g in idx], device=dev)
        cache = base(input_ids=ids, attention_mask=m, position_ids=pos, use_cache=True).cache
        at = torch.tensor(idx, device=dev)
        for li, layer in enumerate(cache.layers):
            if li == len(kv):
                shape = (len(prefixes), *layer.keys.shape[1:2], L, layer.keys.shape[-1])
                kv.append((layer.keys.new_zeros(shape), layer.values.new_zeros(shape)))
            kv[li][0][at, :, L - lb:] = layer.keys
            kv[li][1][at, :, L - lb:] = layer.values
        mask[at, L - lb:] = m
    return kv, mask


class _HFSteps:
    """Suffix and decode passes through the model's own forward: the prefix cache is copied to
    every query row (any causal LM)."""

    def __init__(self, base: Any, cache: Any, rg: Any, prefix_mask: Any):
        self.base, self.cache = base, cache
        if cache is not None:
            cache.reorder_cache(rg)
        self.attn = prefix_mask

    def _run(self, ids: Any, pos: Any) -> Any:
        o = self.base(input_ids=ids, attention_mask=self.attn, position_ids=pos, cache=self.cache,
                      use_cache=True)
        self.cache = o.cache
        return o.last_hidden_state[:, -1]

    def first(self, ids: Any, smask: Any, pos: Any) -> Any:
        import torch

        self.attn = torch.cat([self.attn, smask], dim=1)
        return self._run(ids, pos)

    def keep(self, idx: Any) -> None:
        self.cache.reorder_cache(idx)
        self.attn = self.attn[idx]

    def next(self, nxt: Any, pos: Any) -> Any:
        import torch

        one = torch.ones((len(nxt), 1), dtype=self.attn.dtype, device=self.attn.device)
        self.attn = torch.cat([self.attn, one], dim=1)
        return self._run(nxt.unsqueeze(1), pos.unsqueeze(1))


class _SharedPrefix:
    """Suffix and decode passes of a Llama-style decoder that read each group's prefix cache once.

    The copy-per-row path reads (and first copies) the demonstrations' keys and values once per
    query row and per query head; here every row attends to its group's single copy: the scores
    against the prefix are one matrix product per group (all its rows' query heads stacked), the
    row's own tokens (query suffix, generated answer) live in a preallocated per-row buffer, and
    one softmax runs over both parts. Same maths as the model's attention, so the same answers
    up to floating-point rounding (tested against the copy-per-row path).
    """

    def __init__(self, model: Any, kv: list | None, pmask: Any, rg: Any, capacity: int,
                 pack: bool = True):
        import torch

        self.pack = pack  # projections and MLPs of a padded pass run on the real tokens only

        self.base = _decoder(model)
        cfg = model.config
        self.layers = list(self.base.layers[:cfg.num_hidden_layers])
        att = self.layers[0].self_attn
        self.d = att.head_dim
        self.kvh = cfg.num_key_value_heads
        self.rep = cfg.num_attention_heads // self.kvh
        self.scale = att.scaling
        self.rope = sys.modules[type(att).__module__].apply_rotary_pos_emb
        w = self.base.embed_tokens.weight
        R = len(rg)
        self.kp = [k for k, _ in kv] if kv else None  # (groups, kv heads, prefix, d)
        self.vp = [v for _, v in kv] if kv else None
        self.pmask = pmask
        shape = (R, self.kvh, capacity, self.d)
        self.kr = [torch.empty(shape, dtype=w.dtype, device=w.device) for _ in self.layers]
        self.vr = [torch.empty(shape, dtype=w.dtype, device=w.device) for _ in self.layers]
        self.rmask = torch.zeros((R, capacity), dtype=torch.bool, device=w.device)
        self.n = 0
        self._rows(rg)

    @staticmethod
    def supports(model: Any) -> bool:
        base = _decoder(model)
        cfg = getattr(model, "config", None)
        if getattr(cfg, "model_type", None) != "llama" or base is None:
            return False
        if not all(hasattr(base, a) for a in ("layers", "embed_tokens", "rotary_emb", "norm")):
            return False
        layer = base.layers[0]
        parts = ("input_layernorm", "post_attention_layernorm", "self_attn", "mlp")
        return all(hasattr(layer, a) for a in parts)

    def _rows(self, rg: Any) -> None:
        """Group and slot (rank within the group) of every row."""
        import torch

        self.rg = rg
        R = len(rg)
        if R == 0:
            self.slot, self.width = rg, 1
            return
        first = torch.zeros(self.pmask.shape[0] + 1, dtype=torch.long, device=rg.device)
        counts = torch.bincount(rg, minlength=self.pmask.shape[0])
        first[1:] = counts.cumsum(0)
        self.slot = torch.arange(R, device=rg.device) - first[rg]  # rows of a group are contiguous
        self.width = int(counts.max())

    def keep(self, idx: Any) -> None:
        self.kr = [k[idx] for k in self.kr]
        self.vr = [v[idx] for v in self.vr]
        self.rmask = self.rmask[idx]
        self._rows(self.rg[idx])

    def first(self, ids: Any, smask: Any, pos: Any) -> Any:
        return self._forward(ids, smask.bool(), pos)

    def next(self, nxt: Any, pos: Any) -> Any:
        import torch

        return self._forward(nxt.unsqueeze(1), torch.ones((len(nxt), 1), dtype=torch.bool,
                                                          device=nxt.device), pos.unsqueeze(1))

    def _forward(self, ids: Any, mask: Any, pos: Any) -> Any:
        import torch

        R, T = ids.shape
        n0, n1 = self.n, self.n + T
        self.rmask[:, n0:n1] = mask
        cols, rows = torch.arange(n1, device=ids.device), torch.arange(n0, n1, device=ids.device)
        own = self.rmask[:, None, :n1] & (cols[None, :] <= rows[:, None])  # (R, T, n1): valid earlier row tokens
        own[:, rows - n0, rows] = True  # a padded query position sees itself (no empty softmax)
        allowed = torch.cat([self.pmask[self.rg][:, None, :].expand(R, T, -1), own], dim=2)
        # Left padding wastes up to half of a query pass's products (queries of 2 to 13 tokens
        # padded to the longest); with ``pack`` the residual stream holds the real tokens only
        # and just the attention sees the padded (rows, positions) layout.
        sel = mask if self.pack and T > 1 and not bool(mask.all()) else None

        def heads(y: Any) -> Any:  # (tokens, heads x d) -> (R, heads, T, d)
            if sel is not None:
                full = y.new_zeros((R, T, y.shape[-1]))
                full[sel] = y
                y = full
            return y.view(R, T, -1, self.d).transpose(1, 2)

        h = self.base.embed_tokens(ids if sel is None else ids[sel])
        cos, sin = self.base.rotary_emb(h, position_ids=pos)
        for li, layer in enumerate(self.layers):
            att = layer.self_attn
            x = layer.input_layernorm(h)
            q, k = self.rope(heads(att.q_proj(x)), heads(att.k_proj(x)), cos, sin)
            self.kr[li][:, :, n0:n1] = k
            self.vr[li][:, :, n0:n1] = heads(att.v_proj(x))
            o = self._attend(li, q, allowed, n1)
            h = h + att.o_proj(o if sel is None else o[sel])
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        self.n = n1
        if sel is not None:  # each row's last position is real (left padding): its packed index
            return self.base.norm(h[sel.sum(1).cumsum(0) - 1])
        return self.base.norm(h[:, -1])

    def _attend(self, li: int, q: Any, allowed: Any, n1: int) -> Any:
        import torch

        R, _, T, d = q.shape
        kvh, rep = self.kvh, self.rep
        m = rep * T  # query heads of one kv head, times positions
        q = q.reshape(R, kvh, m, d)  # head h reads kv head h // rep
        parts = []
        G, P = self.pmask.shape
        if self.kp is not None and P:
            qg = q.new_zeros((G, kvh, self.width, m, d))
            qg[self.rg, :, self.slot] = q
            sp = torch.matmul(qg.view(G, kvh, self.width * m, d), self.kp[li].transpose(-1, -2))
            parts.append(sp.view(G, kvh, self.width, m, P)[self.rg, :, self.slot])
        parts.append(torch.matmul(q, self.kr[li][:, :, :n1].transpose(-1, -2)))
        s = torch.cat(parts, dim=-1).float() * self.scale
        s = s.view(R, kvh, rep, T, -1).masked_fill(~allowed[:, None, None], float("-inf"))
        p = torch.softmax(s, dim=-1).to(q.dtype).view(R, kvh, m, -1)
        o = torch.matmul(p[..., P:], self.vr[li][:, :, :n1])
        if self.kp is not None and P:
            pg = p.new_zeros((G, kvh, self.width, m, P))
            pg[self.rg, :, self.slot] = p[..., :P]
            og = torch.matmul(pg.view(G, kvh, self.width * m, P), self.vp[li])
            o = o + og.view(G, kvh, self.width, m, d)[self.rg, :, self.slot]
        return o.view(R, kvh * rep, T, d).transpose(1, 2).reshape(R, T, kvh * rep * d)


# -- batched LoRA -----------------------------------------------------------------------------
def lora_targets(model: Any, target_modules: Sequence[str], top_layers: int | None) -> list[tuple[str, Any]]:
    """The Linear modules that get adapters, in ``named_modules`` order (as peft picks them)."""
    import torch

    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    keep = set(range(max(0, n_layers - int(top_layers)), n_layers)) if top_layers and n_layers else None
    out = []
    for name, mod in model.named_modules():
        if name.rsplit(".", 1)[-1] not in target_modules or not isinstance(mod, torch.nn.Linear):
            continue
        if keep is not None:
            m = re.search(r"\.layers\.(\d+)\.", name)
            if not m or int(m.group(1)) not in keep:
                continue
        out.append((name, mod))
    if not out:
        raise ValueError(f"lora: none of target_modules {list(target_modules)} in the model")
    return out


class BatchedLoRA:
    """``n`` independent LoRA adapters (rank ``rank``) on the target modules, one per episode.

    Use as a context manager: on entry the hooks are attached and the base weights frozen; on exit
    the hooks are removed and every ``requires_grad`` flag and the training mode are restored.
    ``rows`` (a tensor: batch row -> episode, or one int for every row) says which adapter each
    row of the next forward uses.
    The initial adapters equal peft's for the same ``seed`` (A: Kaiming-uniform, B: zero).
    """

    def __init__(self, model: Any, n: int, rank: int = 8, alpha: int = 16,
                 target_modules: Sequence[str] = ("q_proj", "v_proj"), top_layers: int | None = None,
                 seed: int = 0):
        import torch

        self.model, self.n, self.scale = model, int(n), alpha / rank
        self.targets = lora_targets(model, tuple(target_modules), top_layers)
        dev = model.device
        self.A, self.B = {}, {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for name, mod in self.targets:  # the draws peft makes: A, B (nn.Linear init), A again
                a = torch.empty(rank, mod.in_features)
                torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                torch.nn.init.kaiming_uniform_(torch.empty(mod.out_features, rank), a=math.sqrt(5))
                torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                self.A[name] = torch.nn.Parameter(a.to(dev).unsqueeze(0).repeat(self.n, 1, 1))
                self.B[name] = torch.nn.Parameter(torch.zeros(self.n, mod.out_features, rank, device=dev))
        self.rows: Any = None
        self._handles: list = []

    def parameters(self) -> list:
        return [p for name, _ in self.targets for p in (self.A[name], self.B[name])]

    def _hook(self, name: str):
        def hook(mod: Any, args: tuple, out: Any) -> Any:
            import torch

            if self.rows is None:
                raise RuntimeError("BatchedLoRA: rows (batch row -> episode) not set")
            x = args[0].float()
            rows = self.rows
            if isinstance(rows, int):  # every row uses one episode's adapter
                d = (x @ self.A[name][rows].T) @ self.B[name][rows].T * self.scale
                return out + d.to(out.dtype)
            if len(rows) != x.shape[0]:
                raise RuntimeError(f"BatchedLoRA: {len(rows)} row labels for a batch of {x.shape[0]}")
            a, b = self.A[name][rows], self.B[name][rows]  # (N, r, in), (N, out, r)
            d = torch.bmm(torch.bmm(x, a.transpose(1, 2)), b.transpose(1, 2)) * self.scale
            return out + d.to(out.dtype)
        return hook

    def __enter__(self) -> "BatchedLoRA":
        self._flags = {n: p.requires_grad for n, p in self.model.named_parameters()}
        self._training = self.model.training
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._handles = [mod.register_forward_hook(self._hook(name)) for name, mod in self.targets]
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        for n, p in self.model.named_parameters():
            p.requires_grad_(self._flags.get(n, p.requires_grad))
        self.model.train(self._training)
        self.rows = None


def train_lora_batched(model: Any, tok: Any, lora: BatchedLoRA,
                       episodes: Sequence[tuple[Sequence[str], Sequence[str]]], steps: int = 16,
                       lr: float = 3e-3, batch_size: int = 8, seed: int = 0) -> None:
    """Train adapter ``e`` on episode ``e``'s (prompt, answer) pairs, all episodes in one batch.

    Per episode this is :func:`baselines.hf_model.lora_adapter`'s loop: ``batch_size`` pairs per
    step drawn with a generator seeded by ``seed``, mean cross-entropy over the answer tokens,
    gradient norm clipped to 1 (per episode), AdamW without weight decay.
    """
    import torch

    if len(episodes) != lora.n:
        raise ValueError(f"train_lora_batched: {len(episodes)} episodes for {lora.n} adapters")
    dev = model.device
    seqs = []
    for prompts, answers in episodes:
        if len(prompts) != len(answers):
            raise ValueError(f"train_lora_batched: {len(prompts)} prompts but {len(answers)} answers")
        seqs.append([(encode(tok, p), encode(tok, a)) for p, a in zip(prompts, answers)])
    if steps <= 0 or not any(seqs):
        return
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    # The training sequences in right-padded tables of similar length (one table padded to the
    # longest wasted half its work: lengths 8-22 tokens, mean 11); the layers below the first
    # adapter are frozen and see no adapter, so their output is computed once, not at every step.
    flat = [(e, i) for e, ss in enumerate(seqs) for i in range(len(ss))]
    size = {key: len(seqs[key[0]][key[1]][0]) + len(seqs[key[0]][key[1]][1]) for key in flat}
    buckets = [[flat[r] for r in b] for b in _length_buckets([size[key] for key in flat], 0.8)]
    index = {key: (b, r) for b, keys in enumerate(buckets) for r, key in enumerate(keys)}
    tables = []
    for keys in buckets:
        L = size[keys[0]]
        ids = torch.full((len(keys), L), pad, dtype=torch.long)
        attn = torch.zeros((len(keys), L), dtype=torch.long)
        for r, (e, i) in enumerate(keys):
            p, a = seqs[e][i]
            ids[r, :len(p) + len(a)] = torch.tensor(p + a)
            attn[r, :len(p) + len(a)] = 1
        tables.append((keys, ids.to(dev), attn.to(dev)))
    impl = getattr(model.config, "_attn_implementation", None)
    switch = impl == "sdpa" and hasattr(model, "set_attn_implementation")
    if switch:  # on short training rows plain attention back-propagates faster (measured ~25%)
        model.set_attn_implementation("eager")
    try:
        _train_steps(model, lora, seqs, index, tables, steps, lr, batch_size, seed)
    finally:
        if switch:
            model.set_attn_implementation(impl)
        lora.rows = None


def _train_steps(model: Any, lora: BatchedLoRA, seqs: list, index: dict, tables: list,
                 steps: int, lr: float, batch_size: int, seed: int) -> None:
    """AdamW steps; each step's loss is summed over the length tables (gradients accumulate),
    so it equals the loss of one padded batch."""
    import torch

    dev = tables[0][1].device
    params = lora.parameters()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gens = [torch.Generator().manual_seed(seed) for _ in seqs]
    tops = [_TopLayers(model, lora, ids, attn) for _, ids, attn in tables]
    for _ in range(steps):
        chosen: list[list] = [[] for _ in tables]  # per table: (row, episode)
        n_ans = [0] * lora.n  # answer tokens per episode in this step
        for e, ss in enumerate(seqs):
            if not ss:
                continue
            if len(ss) > batch_size:
                pick = torch.randperm(len(ss), generator=gens[e])[:batch_size].tolist()
            else:
                pick = list(range(len(ss)))
            for i in pick:
                b, r = index[(e, i)]
                chosen[b].append((r, e))
                n_ans[e] += len(seqs[e][i][1])
        counts = torch.tensor(n_ans, dtype=torch.float32, device=dev)
        opt.zero_grad(set_to_none=True)
        for (keys, _, _), top, picked in zip(tables, tops, chosen):
            if not picked:
                continue
            tgt_r, tgt_t, tgt_y, tgt_e = [], [], [], []
            for j, (r, e) in enumerate(picked):  # position t predicts token t + 1
                p, a = seqs[e][keys[r][1]]
                for k in range(len(a)):
                    tgt_r.append(j)
                    tgt_t.append(len(p) + k - 1)
                    tgt_y.append(a[k])
                    tgt_e.append(e)
            lora.rows = torch.tensor([e for _, e in picked], device=dev)
            h = top(torch.tensor([r for r, _ in picked], device=dev))
            logits = _logits32(model, h[torch.tensor(tgt_r, device=dev), torch.tensor(tgt_t, device=dev)])
            tok_loss = torch.nn.functional.cross_entropy(logits, torch.tensor(tgt_y, device=dev),
                                                         reduction="none")
            # the mean over each episode's answer tokens, summed over episodes
            (tok_loss / counts[torch.tensor(tgt_e, device=dev)]).sum().backward()
        with torch.no_grad():  # clip_grad_norm_(max_norm=1) per episode
            sq = sum(p.grad.pow(2).flatten(1).sum(1) for p in params if p.grad is not None)
            coef = (1.0 / (sq.sqrt() + 1e-6)).clamp(max=1.0)
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(coef.view(-1, *([1] * (p.dim() - 1))))
        opt.step()


class _Stop(Exception):
    pass


class _TopLayers:
    """Final hidden states of chosen rows of a fixed batch, re-running only the adapted layers.

    The input of the lowest adapted decoder layer (and the keyword arguments the model passes to
    it: mask, positions) is captured once; each call slices those rows and runs the layers from
    there, then the final norm. Models without ``layers``/``norm`` run the whole forward instead.
    """

    def __init__(self, model: Any, lora: BatchedLoRA, ids: Any, attn: Any):
        import torch

        self.model, self.ids, self.attn = model, ids, attn
        self.base = _decoder(model)
        layers = getattr(self.base, "layers", None)
        first = None
        if layers is not None and hasattr(self.base, "norm"):
            for k, layer in enumerate(layers):
                if any(mod is m for _, m in lora.targets for mod in layer.modules()):
                    first = k
                    break
        self.first = first
        if first is None:
            return
        captured: dict = {}

        def grab(mod: Any, args: tuple, kwargs: dict) -> None:
            captured["args"], captured["kwargs"] = args, kwargs
            raise _Stop

        handle = layers[first].register_forward_pre_hook(grab, with_kwargs=True)
        saved_rows, lora.rows = lora.rows, 0
        try:
            with torch.no_grad():
                self.base(input_ids=ids, attention_mask=attn, use_cache=False)
        except _Stop:
            pass
        finally:
            handle.remove()
            lora.rows = saved_rows
        if "args" not in captured:
            self.first = None
            return
        self.args, self.kwargs = captured["args"], captured["kwargs"]
        self.n = ids.shape[0]

    def _take(self, v: Any, rows: Any) -> Any:
        import torch

        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == self.n and self.n > 1:
            return v[rows]
        if isinstance(v, tuple):
            return tuple(self._take(x, rows) for x in v)
        return v

    def __call__(self, rows: Any) -> Any:
        if self.first is None:
            return self.base(input_ids=self.ids[rows], attention_mask=self.attn[rows],
                             use_cache=False).last_hidden_state
        args = tuple(self._take(a, rows) for a in self.args)
        kwargs = {k: self._take(v, rows) for k, v in self.kwargs.items()}
        h, rest = (args[0], args[1:]) if args else (kwargs.pop("hidden_states"), ())
        for layer in self.base.layers[self.first:self.base.config.num_hidden_layers]:
            out = layer(h, *rest, **kwargs)
            h = out[0] if isinstance(out, tuple) else out
        return self.base.norm(h)
