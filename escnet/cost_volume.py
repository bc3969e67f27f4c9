"""Image-text cost volume: cosine similarity, then a conv embedding over templates."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def correlation(dense: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pixel with every (class, template) embedding.

    dense (B, D, h, w), text (T, P, D) -> (B, P, T, h, w). Written as one matmul (no einsum).
    """
    b, d, h, w = dense.shape
    t, p, _ = text.shape
    img = F.normalize(dense, dim=1).flatten(2)  # (B, D, h*w)
    txt = F.normalize(text, dim=-1).reshape(t * p, d)  # (T*P, D)
    corr = torch.matmul(txt, img)  # (B, T*P, h*w)
    return corr.reshape(b, t, p, h, w).transpose(1, 2)  # (B, P, T, h, w)


class CorrelationEmbed(nn.Module):
    """P template channels -> C channels per class with a k x k conv.

    corr (B, P, T, h, w) -> (B, T, C, h, w).
    """

    def __init__(self, templates: int, dim: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(templates, dim, kernel_size=kernel, padding=kernel // 2)

    def forward(self, corr: torch.Tensor) -> torch.Tensor:
        b, p, t, h, w = corr.shape
        x = corr.transpose(1, 2).reshape(b * t, p, h, w)  # (B*T, P, h, w)
        x = self.conv(x)
        return x.reshape(b, t, -1, h, w)  # (B, T, C, h, w)
