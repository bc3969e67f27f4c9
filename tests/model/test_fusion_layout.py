"""The channels-last per-class path equals the same layers run in their own (NCHW) layout."""

from __future__ import annotations

import torch
from torch import nn

from escnet.config import FusionConfig
from escnet.modeling.fusion import SpatialFusion
from escnet.modeling.guided_swin import GuidedSwinBlock
from escnet.modeling.layers import pointwise


def test_pointwise_equals_the_1x1_conv() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, kernel_size=1)
    x = torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(pointwise(conv, x.permute(0, 2, 3, 1)), conv(x).permute(0, 2, 3, 1))


def test_spatial_fusion_equals_conv_over_stacked_channels() -> None:
    torch.manual_seed(0)
    config = FusionConfig(window=4, shift=2, swin_heads=2, image_guidance="residual")  # the earlier design
    fusion = SpatialFusion(16, 8, config, grid=8).eval()
    x, sam = torch.randn(3, 16, 8, 8), torch.randn(3, 8, 8, 8)  # NCHW
    with torch.no_grad():
        guidance = fusion.fuse(torch.cat([sam, fusion.corr_embed(x)], dim=1))  # the convs as written
        expected = fusion.swin((x + guidance).permute(0, 2, 3, 1))
        got = fusion(x.permute(0, 2, 3, 1), sam.permute(0, 2, 3, 1))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_guided_swin_block_is_torchvisions_block_plus_guidance_in_query_and_key() -> None:
    """CAT-Seg's block: with the guidance's query/key weights at zero it is torchvision's Swin block
    (same parameters); the guidance changes the output only through query and key."""
    from torchvision.models.swin_transformer import SwinTransformerBlock  # after escnet (its torchvision shim)

    torch.manual_seed(0)
    for shift in (0, 2):
        guided = GuidedSwinBlock(16, 8, heads=2, window=4, shift=shift, mlp_ratio=4.0, grid=8).eval()
        plain = SwinTransformerBlock(16, 2, window_size=[4, 4], shift_size=[shift, shift], mlp_ratio=4.0).eval()
        state = {k: v for k, v in guided.state_dict().items() if "_guidance" not in k}
        plain.load_state_dict(state, strict=True)
        x, g = torch.randn(3, 8, 8, 16), torch.randn(3, 8, 8, 8)
        with torch.no_grad():
            with_guidance = guided(x, g)
            guided.attn.q_guidance.weight.zero_()
            guided.attn.k_guidance.weight.zero_()
            torch.testing.assert_close(guided(x, g), plain(x), rtol=1e-5, atol=1e-5)
        assert (with_guidance - plain(x)).abs().max() > 1e-3


def test_query_key_fusion_normalises_the_guidance() -> None:
    torch.manual_seed(0)
    fusion = SpatialFusion(16, 8, FusionConfig(window=4, shift=2, swin_heads=2), grid=8).eval()
    x, sam = torch.randn(3, 8, 8, 16), torch.randn(3, 8, 8, 8)
    with torch.no_grad():
        nchw = torch.cat([sam.permute(0, 3, 1, 2), fusion.corr_embed(x.permute(0, 3, 1, 2))], dim=1)
        guidance = fusion.fuse(nchw).permute(0, 2, 3, 1)
        g = fusion.guidance_norm(guidance)
        expected = x
        for block in fusion.swin:
            expected = block(expected, g)
        torch.testing.assert_close(fusion(x, sam), expected, rtol=1e-5, atol=1e-5)
