"""The yardstick of the paper's cost: a CAT-Seg equivalent built from this project's own modules.

CAT-Seg (Cho et al., CVPR 2024; KU-CVLAB/CAT-Seg) with ESC-Net's CLIP towers, cost volume and
upsampling decoder, and no SAM: the CLIP dense features projected by a 3x3 conv + ReLU
(CAT-Seg's ``guidance_projection``) are the appearance guidance of ``layers`` aggregator layers,
each a Swin pair with the guidance LayerNorm'd into query and key (``GuidedSwinBlock``) and
linear class attention with the text guidance (``ClassAttention``). It is counted, never
trained: ``escnet-info`` prints ESC-Net's FLOPs beside it (model.md: "The paper's cost").
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ESCNetConfig
from .cost_volume import CorrelationEmbed, correlation
from .decoder import UpsamplingDecoder
from .fusion import ClassAttention
from .guided_swin import GuidedSwinBlock

CATSEG_LAYERS = 2  # CAT-Seg's aggregator layers


class AggregatorLayer(nn.Module):
    """x (B, T, C, h, w), guidance (B, h, w, C) per image, text (T, G) -> (B, T, C, h, w)."""

    def __init__(self, config: ESCNetConfig) -> None:
        super().__init__()
        c, f = config.corr_dim, config.fusion
        self.guidance_norm = nn.LayerNorm(c)
        shifts = [0 if i % 2 == 0 else f.shift for i in range(2)]  # CAT-Seg: always a Swin pair
        self.swin = nn.ModuleList(
            GuidedSwinBlock(c, c, f.swin_heads, f.window, s, f.mlp_ratio, config.grid) for s in shifts
        )
        self.classes = ClassAttention(c, f.text_guidance_dim, f)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        y = x.permute(0, 1, 3, 4, 2).reshape(b * t, h, w, c)  # (B*T, h, w, C)
        g = self.guidance_norm(guidance).unsqueeze(1).expand(b, t, h, w, c).reshape(b * t, h, w, c)
        for block in self.swin:
            y = block(y, g)
        tokens = y.reshape(b, t, h, w, c).permute(0, 2, 3, 1, 4).reshape(b * h * w, t, c)  # (B*h*w, T, C)
        kv, k_sum = self.classes.sums(tokens, text)
        out = self.classes.attend(tokens, text, kv, k_sum)  # (B*h*w, T, C)
        return out.reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)  # (B, T, C, h, w)


class CATSegDecoder(nn.Module):
    """CAT-Seg's aggregator and upsampling decoder on ESC-Net's encoder outputs: the same inputs
    as ``ESCNet.decode`` -> logits (B, T, 4g, 4g)."""

    def __init__(self, config: ESCNetConfig, layers: int = CATSEG_LAYERS) -> None:
        super().__init__()
        c = config
        self.corr_embed = CorrelationEmbed(c.num_templates, c.corr_dim, c.corr_kernel)
        self.guidance = nn.Sequential(nn.Conv2d(c.clip.embed_dim, c.corr_dim, 3, padding=1), nn.ReLU())
        self.text_guidance = nn.Sequential(nn.Linear(c.clip.embed_dim, c.fusion.text_guidance_dim), nn.ReLU())
        self.layers = nn.ModuleList(AggregatorLayer(c) for _ in range(layers))
        self.decoder = UpsamplingDecoder(c.corr_dim, c.guidance_dims, c.decoder_guidance_dims, c.decoder_dims)

    def forward(
        self, dense: torch.Tensor, guidance_a: torch.Tensor, guidance_b: torch.Tensor, text: torch.Tensor
    ) -> torch.Tensor:
        x = self.corr_embed(correlation(dense, text))  # (B, T, C, h, w)
        guidance = self.guidance(dense).permute(0, 2, 3, 1)  # (B, h, w, C)
        text_g = self.text_guidance(text.mean(dim=1))  # (T, G)
        for layer in self.layers:
            x = layer(x, guidance, text_g)
        return self.decoder(x, *self.decoder.project_guidance(guidance_a, guidance_b))
