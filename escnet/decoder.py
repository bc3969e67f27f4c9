"""Upsampling decoder: per-class cost embedding -> logits at 4x the grid (CAT-Seg style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // 16), channels)


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            _norm(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            _norm(cout),
            nn.ReLU(inplace=True),
        )


class UpStage(nn.Module):
    """x (B*T, cin, h, w), guidance (B, g, 2h, 2w) shared by the T classes of each image
    -> (B*T, cout, 2h, 2w).

    ``conv`` reads the upsampled x and the guidance stacked along channels. Its first conv is
    computed as the sum of its two channel groups (the same sum, grouped differently), so that
    the guidance's share runs once per image rather than once per class.
    """

    def __init__(self, cin: int, guidance: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin - guidance, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        b = guidance.shape[0]
        up = self.up(x)  # (B*T, cin - g, 2h, 2w)
        first: nn.Conv2d = self.conv[0]
        split = up.shape[1]
        y = F.conv2d(up, first.weight[:, :split], padding=first.padding)  # (B*T, cout, 2h, 2w)
        shared = F.conv2d(guidance, first.weight[:, split:], first.bias, padding=first.padding)  # (B, cout, 2h, 2w)
        y = (y.reshape(b, -1, *y.shape[1:]) + shared.unsqueeze(1)).reshape(y.shape)  # each image's classes
        for layer in list(self.conv)[1:]:  # norm, ReLU, second conv, norm, ReLU
            y = layer(y)
        return y


class UpsamplingDecoder(nn.Module):
    """Two upsampling stages with the CLIP guidance maps, then a 3x3 head to one channel.

    x (B, T, C, h, w), guid_a (B, Ga, 2h, 2w), guid_b (B, Gb, 4h, 4w) -> logits (B, T, 4h, 4w).
    The guidance maps are projected once per image and shared by every class.
    """

    def __init__(
        self, dim: int, guidance_dims: tuple[int, int], proj_dims: tuple[int, int], dims: tuple[int, int]
    ) -> None:
        super().__init__()
        self.proj_a = nn.Sequential(nn.Conv2d(guidance_dims[0], proj_dims[0], 3, padding=1), nn.ReLU())
        self.proj_b = nn.Sequential(nn.Conv2d(guidance_dims[1], proj_dims[1], 3, padding=1), nn.ReLU())
        self.stage1 = UpStage(dim, proj_dims[0], dims[0])
        self.stage2 = UpStage(dims[0], proj_dims[1], dims[1])
        self.head = nn.Conv2d(dims[1], 1, kernel_size=3, padding=1)

    def project_guidance(self, guid_a: torch.Tensor, guid_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj_a(guid_a), self.proj_b(guid_b)

    def forward(self, x: torch.Tensor, guid_a: torch.Tensor, guid_b: torch.Tensor) -> torch.Tensor:
        """x (B, Tc, C, h, w) and *projected* guidance -> (B, Tc, 4h, 4w)."""
        b, t, c, h, w = x.shape
        x = x.reshape(b * t, c, h, w)  # (B*Tc, C, h, w)
        x = self.stage1(x, guid_a)  # (B*Tc, d0, 2h, 2w)
        x = self.stage2(x, guid_b)  # (B*Tc, d1, 4h, 4w)
        return self.head(x).reshape(b, t, 4 * h, 4 * w)
