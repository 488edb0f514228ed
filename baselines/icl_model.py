"""A small GPT-style transformer that reads (x, y) demonstrations and predicts y at each x.

One token per point: token_i = [x_i, x_{i-1}, y_{i-1}] (zeros before the first point), so the
prediction read at position i has seen x_i and every earlier (x, y) pair but never y_i. One
causal forward pass therefore predicts at every number of demonstrations at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ICLConfig:
    d: int = 8            # input dimension
    max_len: int = 17     # demonstrations + 1 query
    width: int = 64
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ICLConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, L, W = h.shape
        q, k, v = self.qkv(h).split(W, dim=2)
        q, k, v = (t.view(B, L, self.heads, W // self.heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(1, 2).reshape(B, L, W))


class Block(nn.Module):
    def __init__(self, cfg: ICLConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.ln1(h))
        return h + self.mlp(self.ln2(h))


class ICLTransformer(nn.Module):
    """Pre-LayerNorm causal transformer with a linear read-in and a scalar read-out.

    Example
    -------
    >>> m = ICLTransformer(ICLConfig(d=2, max_len=5, width=16, layers=1, heads=2))
    >>> m(torch.zeros(3, 5, 2), torch.zeros(3, 5)).shape
    torch.Size([3, 5])
    """

    def __init__(self, cfg: ICLConfig):
        super().__init__()
        self.cfg = cfg
        self.read_in = nn.Linear(2 * cfg.d + 1, cfg.width)
        self.pos = nn.Embedding(cfg.max_len, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.width)
        self.read_out = nn.Linear(cfg.width, 1)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.layers))

    @staticmethod
    def _init(mod: nn.Module) -> None:
        if isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, std=0.02)
            nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.Embedding):
            nn.init.normal_(mod.weight, std=0.02)

    @staticmethod
    def tokens(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """[x_i, x_{i-1}, y_{i-1}] for every position i; (B, L, 2d+1)."""
        prev_x = F.pad(x, (0, 0, 1, 0))[:, :-1]
        prev_y = F.pad(y, (1, 0))[:, :-1]
        return torch.cat([x, prev_x, prev_y.unsqueeze(-1)], dim=-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Predictions (B, L): entry i uses x_0..x_i and y_0..y_{i-1}."""
        L = x.shape[1]
        if L > self.cfg.max_len:
            raise ValueError(f"sequence of {L} points exceeds the model's max_len {self.cfg.max_len}")
        h = self.read_in(self.tokens(x, y)) + self.pos(torch.arange(L, device=x.device))
        for blk in self.blocks:
            h = blk(h)
        return self.read_out(self.ln_f(h)).squeeze(-1)
