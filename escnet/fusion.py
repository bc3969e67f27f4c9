"""Vision-language fusion (VLF): spatial Swin blocks per class, linear attention across classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.swin_transformer import SwinTransformerBlock

from .config import FusionConfig
from .guided_swin import GuidedSwinBlock
from .window_attention import grid_window_attention


class SpatialFusion(nn.Module):
    """The VLF's spatial half: CAT-Seg's Swin pair over the grid, per class, with image guidance.

    Image guidance: a 1x1 conv over [SAM-refined features, 1x1 embedding of the correlation]
    (computed as the sum of its two channel groups, no concatenation; the embedding and the
    conv's share of it as one (C, C) map, the product of their weights). With
    ``image_guidance="query_key"`` (CAT-Seg's aggregator) it is LayerNorm'd and joins query and
    key of every Swin block (``GuidedSwinBlock``), values from the correlation alone; with
    ``"residual"`` (the earlier design) it is added to the input of torchvision's
    ``SwinTransformerBlock`` pair. Window attention laid out for the ``grid`` ahead of time.

    Channels-last: x (N, h, w, C) correlation embedding of one class, sam (N, h, w, S)
    -> (N, h, w, C).
    """

    def __init__(self, dim: int, sam_dim: int, config: FusionConfig, grid: int, first: int = 0) -> None:
        """``first``: the index of this block's first Swin block among all the model's: shifted
        and regular windows alternate across blocks too (one Swin block per ESC block still
        gives CAT-Seg's regular/shifted pairs over two blocks)."""
        super().__init__()
        self.corr_embed = nn.Conv2d(dim, dim, kernel_size=1)
        self.fuse = nn.Conv2d(sam_dim + dim, dim, kernel_size=1)
        self.guided = config.image_guidance == "query_key"
        shifts = [0 if (first + i) % 2 == 0 else config.shift for i in range(config.swin_depth)]
        if self.guided:
            self.guidance_norm = nn.LayerNorm(dim)
            self.swin = nn.ModuleList(
                GuidedSwinBlock(dim, dim, config.swin_heads, config.window, s, config.mlp_ratio, grid) for s in shifts
            )
        elif config.image_guidance == "residual":
            window = [config.window, config.window]
            self.swin = nn.Sequential(
                *[
                    SwinTransformerBlock(
                        dim,
                        config.swin_heads,
                        window_size=window,
                        shift_size=[s, s],
                        mlp_ratio=config.mlp_ratio,
                        attn_layer=grid_window_attention(grid),
                    )
                    for s in shifts
                ]
            )
        else:
            raise ValueError(f"fusion.image_guidance {config.image_guidance!r}: expected 'query_key' or 'residual'")

    def forward(self, x: torch.Tensor, sam: torch.Tensor) -> torch.Tensor:
        weight = self.fuse.weight.flatten(1)  # (C, S + C): the sam channels, then the embedded x's
        split = sam.shape[-1]
        # fuse's x channels after corr_embed are one linear map of x: (C, C) @ (C, C), computed once
        w_x, embed = weight[:, split:], self.corr_embed.weight.flatten(1)
        bias = torch.mv(w_x, self.corr_embed.bias) + self.fuse.bias
        guidance = F.linear(sam, weight[:, :split]) + F.linear(x, torch.matmul(w_x, embed), bias)  # (N, h, w, C)
        if not self.guided:
            return self.swin(x + guidance)  # (N, h, w, C)
        guidance = self.guidance_norm(guidance)
        for block in self.swin:
            x = block(x, guidance)
        return x  # (N, h, w, C)


class ClassAttention(nn.Module):
    """Linear attention across the T classes at each pixel (no positional embedding).

    The projected text embedding is joined to query and key (a concatenation, computed as the
    sum of two linear maps so it is never broadcast to every pixel). Pre-norm residual block
    as in CAT-Seg's class transformer. Because the attention is linear, it splits into
    ``sums`` (each chunk of classes adds its share) and ``attend`` (each chunk's output from the
    sums over all classes): any T in bounded memory, the same result as all classes at once.

    x (M, Tc, C) with M = B*h*w, text (Tc, G); see ``sums`` and ``attend``.
    """

    def __init__(self, dim: int, text_dim: int, config: FusionConfig) -> None:
        super().__init__()
        self.heads = config.class_heads
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.q_text = nn.Linear(text_dim, dim, bias=False)
        self.k_text = nn.Linear(text_dim, dim, bias=False)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        m, t, c = x.shape
        return x.reshape(m, t, self.heads, c // self.heads).transpose(1, 2)  # (M, H, T, d)

    def sums(self, x: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """These classes' share of the sums over classes: x (M, Tc, C), text (Tc, G)
        -> sum of phi(k)^T v (M, H, d, d) and sum of phi(k) (M, H, d). Add the shares of all chunks."""
        h = self.norm1(x)
        k = self._heads(F.elu(self.k(h) + self.k_text(text)) + 1.0)  # (M, H, Tc, d)
        v = self._heads(self.v(h))  # (M, H, Tc, d)
        return torch.matmul(k.transpose(2, 3), v), k.sum(dim=2)

    def attend(self, x: torch.Tensor, text: torch.Tensor, kv: torch.Tensor, k_sum: torch.Tensor) -> torch.Tensor:
        """Each class's output from the sums over *all* classes: x (M, Tc, C), text (Tc, G),
        kv (M, H, d, d), k_sum (M, H, d) -> (M, Tc, C)."""
        h = self.norm1(x)
        q = self._heads(F.elu(self.q(h) + self.q_text(text)) + 1.0)  # (M, H, Tc, d)
        num = torch.matmul(q, kv)  # (M, H, Tc, d)
        den = torch.matmul(q, k_sum.unsqueeze(-1)) + 1e-6  # (M, H, Tc, 1)
        att = (num / den).transpose(1, 2).reshape(x.shape)  # (M, Tc, C)
        y = x + self.proj(att)
        return y + self.mlp(self.norm2(y))
