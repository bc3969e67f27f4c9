"""The channels-last per-class path equals the same layers run in their own (NCHW) layout."""

from __future__ import annotations

import torch
from torch import nn

from escnet.config import FusionConfig
from escnet.fusion import SpatialFusion
from escnet.layers import pointwise


def test_pointwise_equals_the_1x1_conv() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, kernel_size=1)
    x = torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(pointwise(conv, x.permute(0, 2, 3, 1)), conv(x).permute(0, 2, 3, 1))


def test_spatial_fusion_equals_conv_over_stacked_channels() -> None:
    torch.manual_seed(0)
    fusion = SpatialFusion(16, 8, FusionConfig(window=4, shift=2, swin_heads=2), grid=8).eval()
    x, sam = torch.randn(3, 16, 8, 8), torch.randn(3, 8, 8, 8)  # NCHW
    with torch.no_grad():
        guidance = fusion.fuse(torch.cat([sam, fusion.corr_embed(x)], dim=1))  # the convs as written
        expected = fusion.swin((x + guidance).permute(0, 2, 3, 1))
        got = fusion(x.permute(0, 2, 3, 1), sam.permute(0, 2, 3, 1))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
