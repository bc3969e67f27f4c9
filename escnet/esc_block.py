"""One ESC block: SAM prompt refinement + vision-language fusion over the cost embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .chunks import class_spans
from .config import ESCNetConfig
from .fusion import ClassAttention, SpatialFusion
from .sam_prompt import SamPromptBlock


class ESCBlock(nn.Module):
    """x (B, C, T, h, w) cost embedding -> (B, C, T, h, w), with its own weights.

    Image side of SAM: the class's correlation embedding and the CLIP features, each
    projected to SAM's width by a 1x1 conv, plus the dense prompt embedding and SAM's
    positional encoding. Classes run as batch entries (B*T), in chunks of ``class_chunk``.
    """

    def __init__(self, config: ESCNetConfig) -> None:
        super().__init__()
        dim, sam_dim = config.corr_dim, config.sam.dim
        self.corr_to_sam = nn.Conv2d(dim, sam_dim, kernel_size=1)
        self.clip_to_sam = nn.Conv2d(config.clip.embed_dim, sam_dim, kernel_size=1)
        self.sam = SamPromptBlock(config.sam, config.grid, config.image_size)
        self.spatial = SpatialFusion(dim, sam_dim, config.fusion)
        self.classes = ClassAttention(dim, config.fusion.text_guidance_dim, config.fusion)

    def forward(
        self,
        x: torch.Tensor,
        clip: torch.Tensor,
        points: torch.Tensor,
        masks: torch.Tensor,
        text: torch.Tensor,
        chunk: int | None,
    ) -> torch.Tensor:
        """x (B, C, T, h, w); clip (B, D, h, w); points (B, T, K, 2); masks (B, T, 1, 4h, 4w);
        text (T, G) projected text guidance."""
        b, c, t, h, w = x.shape
        clip_sam = self.clip_to_sam(clip)  # (B, S, h, w), once per image
        outs = []
        for s, e in class_spans(t, chunk):
            tc = e - s
            xc = x[:, :, s:e].transpose(1, 2).reshape(b * tc, c, h, w)  # (B*Tc, C, h, w)
            # (B*Tc, S, h, w) -> (B, Tc, S, h, w) + the image's CLIP term broadcast over its classes
            image = (self.corr_to_sam(xc).reshape(b, tc, -1, h, w) + clip_sam.unsqueeze(1)).reshape(b * tc, -1, h, w)
            refined = self.sam(
                image,
                points[:, s:e].reshape(b * tc, *points.shape[2:]),  # (B*Tc, K, 2)
                masks[:, s:e].reshape(b * tc, *masks.shape[2:]),  # (B*Tc, 1, 4h, 4w)
            )
            y = self.spatial(xc, refined)  # (B*Tc, C, h, w)
            outs.append(y.reshape(b, tc, c, h, w))
        y = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]  # (B, T, C, h, w)
        tokens = y.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)  # (B*h*w, T, C)
        tokens = self.classes(tokens, text, chunk)
        return tokens.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)  # (B, C, T, h, w)


def upsample_masks(masks: torch.Tensor) -> torch.Tensor:
    """(N, 1, h, w) -> (N, 1, 4h, 4w): SAM's mask input is 4x its embedding grid."""
    return F.interpolate(masks, scale_factor=4.0, mode="bilinear", align_corners=False)
