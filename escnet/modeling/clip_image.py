"""CLIP image side: dense features (CAT-Seg style last block) and the decoder guidance maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dense_last_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CAT-Seg's dense attention for the last CLIP block.

    The value branch of the attention (projected by out_proj) replaces the attention output,
    and the only residual is the class token; the MLP then applies as usual.
    x (B, 1 + L, W) -> (B, 1 + L, W).
    """
    attn: nn.MultiheadAttention = block.attn
    y = block.ln_1(x)
    width = y.shape[-1]
    v_weight = attn.in_proj_weight[2 * width :]
    v_bias = attn.in_proj_bias[2 * width :] if attn.in_proj_bias is not None else None
    v = F.linear(y, v_weight, v_bias)
    v = attn.out_proj(v)
    v = v + x[:, :1]  # class-token residual only
    return v + block.ls_2(block.mlp(block.ln_2(v)))


def clip_dense_features(
    visual: nn.Module, images: torch.Tensor, guidance_layers: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run open_clip's VisionTransformer with a dense last block.

    images (B, 3, S, S), CLIP-normalised -> dense features (B, D, g, g) and the patch tokens
    of the two guidance blocks, each (B, W, g, g), where g = S / patch.
    """
    x = visual._embeds(images)  # (B, 1 + g*g, W)
    blocks = visual.transformer.resblocks
    taken: dict[int, torch.Tensor] = {}
    for i, block in enumerate(blocks[:-1]):
        x = block(x)
        if i in guidance_layers:
            taken[i] = x
    x = dense_last_block(blocks[-1], x)
    x = visual.ln_post(x)
    x = x @ visual.proj  # (B, 1 + g*g, D)
    b, n, d = x.shape
    g = int(round((n - 1) ** 0.5))

    def to_map(tokens: torch.Tensor) -> torch.Tensor:
        # (B, 1 + g*g, C) -> drop class token -> (B, C, g, g)
        return tokens[:, 1:].transpose(1, 2).reshape(b, tokens.shape[-1], g, g)

    return to_map(x), to_map(taken[guidance_layers[0]]), to_map(taken[guidance_layers[1]])


class GuidanceUpsampler(nn.Module):
    """Transposed convs from CLIP tokens to the decoder's guidance maps.

    tokens_a, tokens_b (B, W, g, g) -> (B, dims[0], 2g, 2g), (B, dims[1], 4g, 4g).
    """

    def __init__(self, width: int, dims: tuple[int, int]) -> None:
        super().__init__()
        self.up2 = nn.ConvTranspose2d(width, dims[0], kernel_size=2, stride=2)
        self.up4 = nn.ConvTranspose2d(width, dims[1], kernel_size=4, stride=4)

    def forward(self, tokens_a: torch.Tensor, tokens_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.up2(tokens_a), self.up4(tokens_b)
