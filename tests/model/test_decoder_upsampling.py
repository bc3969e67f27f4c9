"""The upsampling decoder's stages: the guidance's share of the first conv runs once per image."""

from __future__ import annotations

import torch

from escnet.modeling.decoder import UpStage


def test_up_stage_equals_the_conv_over_stacked_channels() -> None:
    torch.manual_seed(0)
    stage = UpStage(cin=12, guidance=4, cout=8).eval()
    with torch.no_grad():
        stage.conv[1].weight.uniform_(0.5, 1.5)  # non-trivial GroupNorm affine
        b, t = 2, 3
        x = torch.randn(b * t, 12, 5, 5)
        guidance = torch.randn(b, 4, 10, 10)
        per_class = guidance.unsqueeze(1).expand(b, t, 4, 10, 10).reshape(b * t, 4, 10, 10)
        ref = stage.conv(torch.cat([stage.up(x), per_class], dim=1))  # every class's own copy of the guidance
        out = stage(x, guidance)
    assert out.shape == (b * t, 8, 10, 10)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_up_stage_keeps_each_image_with_its_own_classes() -> None:
    torch.manual_seed(0)
    stage = UpStage(cin=6, guidance=2, cout=4).eval()
    x = torch.randn(1, 6, 3, 3).expand(4, 6, 3, 3)  # 2 images x 2 classes, all the same class state
    guidance = torch.stack([torch.zeros(2, 6, 6), torch.ones(2, 6, 6)])  # two different images
    with torch.no_grad():
        out = stage(x, guidance).reshape(2, 2, 4, 6, 6)
    torch.testing.assert_close(out[:, 0], out[:, 1])  # the classes of one image agree
    assert not torch.allclose(out[0], out[1])  # the images do not
