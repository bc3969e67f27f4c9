"""Swin window attention for a fixed grid: the shift, the window partition and the shift mask
precomputed once, so that the exported graph holds them as constants.

torchvision's ``shifted_window_attention`` rolls the feature map, cuts it into windows with a
reshape and a 6-D permute, and builds the shifted windows' attention mask at every call with
slice assignments; exported to ONNX that is Slice/Concat pairs per rolled axis, a Transpose
each way and the mask either rebuilt at run time or folded only by an external simplifier.
Here, for the grid the model is built for, the roll and the partition are one gather of tokens
by a precomputed order (and one gather back), and the relative position bias and the shift
mask are added to the attention logits as one tensor. Parameters and the persistent buffer are
torchvision's own (``ShiftedWindowAttention``): checkpoints load unchanged. Any other input
size runs torchvision's function.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.swin_transformer import ShiftedWindowAttention

MASKED = -100.0  # the logit offset torchvision gives token pairs from different shifted regions


def effective_shift(size: int, window: int, shift: int) -> int:
    """torchvision does not shift an axis the window already covers."""
    return 0 if window >= size else shift


def token_order(height: int, width: int, window: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
    """(H*W,) int64: entry n is the raster index (y*W + x) of the token that the n-th window slot
    holds after rolling the grid by -shift; slots run window by window (rows of windows, then
    columns), then row-major inside a window."""
    (wh, ww), (sh, sw) = window, shift
    wy, wx, py, px = torch.meshgrid(
        torch.arange(height // wh), torch.arange(width // ww), torch.arange(wh), torch.arange(ww), indexing="ij"
    )
    y = (wy * wh + py + sh) % height
    x = (wx * ww + px + sw) % width
    return (y * width + x).flatten()


def _regions(size: int, window: int, shift: int) -> torch.Tensor:
    """(size,) region label along one rolled axis: tokens that wrapped around get another label
    than their window neighbours. One region when the axis is not shifted."""
    pos = torch.arange(size)
    if shift == 0:
        return torch.zeros(size, dtype=torch.long)
    return (pos >= size - window).long() + (pos >= size - shift).long()


def shift_mask(height: int, width: int, window: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
    """(nW, L, L) float32 with nW = (H/wh)*(W/ww), L = wh*ww: 0 between tokens of the same region
    of a shifted window, ``MASKED`` between tokens of different regions."""
    (wh, ww), (sh, sw) = window, shift
    label = _regions(height, wh, sh)[:, None] * 3 + _regions(width, ww, sw)[None, :]  # (H, W), rolled frame
    windows = label.reshape(height // wh, wh, width // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)  # (nW, L)
    differ = windows[:, None, :] != windows[:, :, None]  # (nW, L, L)
    return differ.float() * MASKED


class GridWindowAttention(ShiftedWindowAttention):
    """torchvision's ``ShiftedWindowAttention`` with the layout precomputed for a ``grid`` x ``grid``
    input (a multiple of the window). x (N, H, W, C) -> (N, H, W, C), the same values as
    torchvision's forward (the mask enters the logits in one addition with the position bias)."""

    def __init__(
        self,
        dim: int,
        window_size: list[int],
        shift_size: list[int],
        num_heads: int,
        grid: int,
        **kwargs: float | bool,
    ) -> None:
        super().__init__(dim, window_size, shift_size, num_heads, **kwargs)
        self.grid = grid
        window = (window_size[0], window_size[1])
        self.fast = grid % window[0] == 0 and grid % window[1] == 0
        shift = (effective_shift(grid, window[0], shift_size[0]), effective_shift(grid, window[1], shift_size[1]))
        self.shifted = self.fast and sum(shift) > 0
        order = token_order(grid, grid, window, shift) if self.fast else torch.zeros(0, dtype=torch.long)
        # Not saved in checkpoints: rebuilt from the config (the state dict stays torchvision's).
        self.register_buffer("order", order, persistent=False)  # (H*W,)
        self.register_buffer("restore", torch.argsort(order), persistent=False)  # (H*W,)
        mask = shift_mask(grid, grid, window, shift) if self.shifted else torch.zeros(0)
        self.register_buffer("mask", mask, persistent=False)  # (nW, L, L)

    def logit_bias(self) -> torch.Tensor:
        """Relative position bias plus the shift mask: (nW, heads, L, L) shifted, else (1, heads, L, L)."""
        bias = self.get_relative_position_bias()  # (1, heads, L, L)
        return bias + self.mask.unsqueeze(1) if self.shifted else bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        if not self.fast or (h, w) != (self.grid, self.grid):
            return super().forward(x)
        heads, length = self.num_heads, self.window_size[0] * self.window_size[1]
        windows = x.reshape(n, h * w, c).index_select(1, self.order).reshape(-1, length, c)  # (N*nW, L, C)
        qkv = F.linear(windows, self.qkv.weight, self.qkv.bias)  # (N*nW, L, 3C)
        q, k, v = qkv.reshape(-1, length, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)  # (N*nW, h, L, d)
        attn = (q * (c // heads) ** -0.5).matmul(k.transpose(-2, -1))  # (N*nW, heads, L, L)
        if self.shifted:  # (N, nW, heads, L, L) + (nW, heads, L, L)
            attn = (attn.reshape(n, -1, heads, length, length) + self.logit_bias()).reshape(-1, heads, length, length)
        else:
            attn = attn + self.logit_bias()
        attn = F.dropout(F.softmax(attn, dim=-1), p=self.attention_dropout, training=self.training)
        out = attn.matmul(v).transpose(1, 2).reshape(-1, length, c)  # (N*nW, L, C)
        out = F.dropout(F.linear(out, self.proj.weight, self.proj.bias), p=self.dropout, training=self.training)
        return out.reshape(n, h * w, c).index_select(1, self.restore).reshape(n, h, w, c)


def grid_window_attention(grid: int) -> Callable[..., nn.Module]:
    """An ``attn_layer`` for torchvision's ``SwinTransformerBlock`` that builds ``GridWindowAttention``."""
    return partial(GridWindowAttention, grid=grid)
