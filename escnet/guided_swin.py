"""CAT-Seg's Swin block with appearance guidance: the guidance joins query and key only.

CAT-Seg's ``WindowAttention`` (cat_seg/modeling/transformer/model.py) projects queries and keys
from the concatenation [norm1(x), guidance] (``Linear(dim + G, dim)``) and values from norm1(x)
alone. Here the concatenation is computed as the sum of two linear maps (x's share through the
attention's own ``qkv``, the guidance's through ``q_guidance`` / ``k_guidance``), so it is never
materialised. The window layout, the relative position bias and the shift mask are
``GridWindowAttention``'s (torchvision's parameters).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import MLP

from .window_attention import GridWindowAttention


class GuidedWindowAttention(GridWindowAttention):
    """x (N, H, W, C) normalised tokens, guidance (N, H, W, G) -> (N, H, W, C) on the model's grid."""

    def __init__(self, dim: int, guidance: int, window: int, shift: int, heads: int, grid: int) -> None:
        super().__init__(dim, [window, window], [shift, shift], heads, grid=grid)
        if not self.fast:
            raise ValueError(f"window {window} does not tile the {grid}x{grid} grid")
        self.q_guidance = nn.Linear(guidance, dim, bias=False)
        self.k_guidance = nn.Linear(guidance, dim, bias=False)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n, h, w, c = x.shape
        heads, length = self.num_heads, self.window_size[0] * self.window_size[1]
        d = c // heads

        def windows(t: torch.Tensor) -> torch.Tensor:  # (N, H, W, X) -> (N*nW, L, X)
            return t.reshape(n, h * w, -1).index_select(1, self.order).reshape(-1, length, t.shape[-1])

        xw, gw = windows(x), windows(guidance)
        qkv = F.linear(xw, self.qkv.weight, self.qkv.bias)  # (N*nW, L, 3C)
        q, k, v = qkv.split(c, dim=-1)
        q, k = q + self.q_guidance(gw), k + self.k_guidance(gw)  # [x, guidance] -> query, key

        def split(t: torch.Tensor) -> torch.Tensor:  # (N*nW, L, C) -> (N*nW, heads, L, d)
            return t.reshape(-1, length, heads, d).transpose(1, 2)

        attn = (split(q) * d**-0.5).matmul(split(k).transpose(-2, -1))  # (N*nW, heads, L, L)
        if self.shifted:  # (N, nW, heads, L, L) + (nW, heads, L, L)
            attn = (attn.reshape(n, -1, heads, length, length) + self.logit_bias()).reshape(-1, heads, length, length)
        else:
            attn = attn + self.logit_bias()
        out = F.softmax(attn, dim=-1).matmul(split(v)).transpose(1, 2).reshape(-1, length, c)  # (N*nW, L, C)
        out = F.linear(out, self.proj.weight, self.proj.bias)
        return out.reshape(n, h * w, c).index_select(1, self.restore).reshape(n, h, w, c)


class GuidedSwinBlock(nn.Module):
    """CAT-Seg's ``SwinTransformerBlock`` (pre-norm): x + attn(norm1(x), guidance), then
    x + mlp(norm2(x)). x (N, H, W, C), guidance (N, H, W, G) already LayerNorm'd -> (N, H, W, C)."""

    def __init__(
        self, dim: int, guidance: int, heads: int, window: int, shift: int, mlp_ratio: float, grid: int
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GuidedWindowAttention(dim, guidance, window, shift, heads, grid)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, [int(dim * mlp_ratio), dim], activation_layer=nn.GELU, inplace=None)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), guidance)
        return x + self.mlp(self.norm2(x))
