"""SAM's cross attentions computed with the heads on the prompt side equal segment_anything's."""

from __future__ import annotations

import pytest
import torch

# segment_anything's classes through escnet, which makes torchvision importable first.
from escnet.modeling.sam_attention import (
    Attention,
    TwoWayAttentionBlock,
    head_blocks,
    image_to_prompts,
    prompts_to_image,
    two_way_layer,
)


@pytest.mark.parametrize(("dim", "heads", "downsample"), [(32, 2, 2), (64, 8, 2), (48, 4, 1)])
def test_both_directions_equal_sam_attention(dim: int, heads: int, downsample: int) -> None:
    torch.manual_seed(0)
    attn = Attention(dim, heads, downsample_rate=downsample).eval()
    blocks = head_blocks(heads, attn.internal_dim)
    prompts, image = torch.randn(3, 6, dim), torch.randn(3, 40, dim)
    image_v = torch.randn(3, 40, dim)
    with torch.no_grad():
        torch.testing.assert_close(
            prompts_to_image(attn, prompts, image, image_v, blocks), attn(q=prompts, k=image, v=image_v)
        )
        torch.testing.assert_close(
            image_to_prompts(attn, image, prompts, prompts, blocks), attn(q=image, k=prompts, v=prompts)
        )


def test_head_blocks_partition_the_channels() -> None:
    blocks = head_blocks(4, 32)
    assert blocks.shape == (4, 1, 32)
    assert torch.equal(blocks.sum(0), torch.ones(1, 32))  # every channel in exactly one head
    assert blocks[1, 0, 8:16].eq(1).all() and blocks[1, 0, :8].eq(0).all()


@pytest.mark.parametrize("skip_first_layer_pe", [True, False])
def test_layer_equals_two_way_attention_block(skip_first_layer_pe: bool) -> None:
    torch.manual_seed(0)
    layer = TwoWayAttentionBlock(
        64, 8, mlp_dim=96, attention_downsample_rate=2, skip_first_layer_pe=skip_first_layer_pe
    )
    layer.eval()
    queries, keys = torch.randn(2, 6, 64), torch.randn(2, 30, 64)
    query_pe, key_pe = torch.randn(2, 6, 64), torch.randn(1, 30, 64)
    with torch.no_grad():
        expected = layer(queries=queries, keys=keys, query_pe=query_pe, key_pe=key_pe)
        got = two_way_layer(layer, queries, keys, query_pe, key_pe, head_blocks(8, 32))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
