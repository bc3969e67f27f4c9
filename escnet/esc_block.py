"""One ESC block: SAM prompt refinement + vision-language fusion over the cost embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ESCNetConfig
from .fusion import ClassAttention, SpatialFusion
from .layers import pointwise
from .sam_prompt import SamPromptBlock


class ESCBlock(nn.Module):
    """One refinement of the cost embedding (B, C, T, h, w), with its own weights.

    Image side of SAM: the CLIP features projected to SAM's width by a 1x1 conv and LayerNorm'd
    per pixel (as SAM's image-encoder neck leaves its output: LayerNorm2d), optionally plus the
    class's correlation embedding projected the same way (``sam.add_correlation``); SAM adds the
    dense prompt embedding and its positional encoding. Classes run as batch entries (B*T).
    The block is called in steps so that classes can be processed in chunks: ``per_class`` and
    ``class_sums`` per chunk, then ``class_attend`` per chunk with the sums over all classes (see ``ESCNet.decode``).
    """

    def __init__(self, config: ESCNetConfig, index: int = 0) -> None:
        super().__init__()
        dim, sam_dim = config.corr_dim, config.sam.dim
        self.corr_to_sam = nn.Conv2d(dim, sam_dim, kernel_size=1) if config.sam.add_correlation else None
        self.clip_to_sam = nn.Conv2d(config.clip.embed_dim, sam_dim, kernel_size=1)
        # SAM's neck ends in LayerNorm2d(eps=1e-6) over channels: on channels-last maps, nn.LayerNorm.
        self.clip_norm = nn.LayerNorm(sam_dim, eps=1e-6) if config.sam.normalise_image else nn.Identity()
        self.sam = SamPromptBlock(config.sam, config.grid, config.image_size)
        self.spatial = SpatialFusion(dim, sam_dim, config.fusion, config.grid, first=index * config.fusion.swin_depth)
        self.classes = ClassAttention(dim, config.fusion.text_guidance_dim, config.fusion)

    def per_class(self, x: torch.Tensor, clip: torch.Tensor, points: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """The per-class stages (SAM refinement, Swin fusion) for Tc classes, channels-last inside.

        x (B, Tc, C, h, w) cost embedding; clip (B, D, h, w); points (B, Tc, K, 2);
        masks (B, Tc, 1, 4h, 4w) mask logits -> y (B, Tc, C, h, w), the class attention's input.
        """
        b, tc, c, h, w = x.shape
        xc = x.permute(0, 1, 3, 4, 2).reshape(b * tc, h, w, c)  # (B*Tc, h, w, C)
        clip_sam = self.clip_norm(pointwise(self.clip_to_sam, clip.permute(0, 2, 3, 1)))  # (B, h, w, S), per image
        image = clip_sam.unsqueeze(1).expand(b, tc, h, w, clip_sam.shape[-1])  # (B, Tc, h, w, S): shared by classes
        if self.corr_to_sam is not None:  # + the class's own correlation: (B*Tc, h, w, S) -> (B, Tc, h, w, S)
            image = image + pointwise(self.corr_to_sam, xc).reshape(b, tc, h, w, -1)
        refined = self.sam(
            image.reshape(b * tc, h, w, -1),
            points.reshape(b * tc, *points.shape[2:]),  # (B*Tc, K, 2)
            masks.reshape(b * tc, *masks.shape[2:]),  # (B*Tc, 1, 4h, 4w)
        )  # (B*Tc, h, w, S)
        y = self.spatial(xc, refined)  # (B*Tc, h, w, C)
        return y.reshape(b, tc, h, w, c).permute(0, 1, 4, 2, 3)  # (B, Tc, C, h, w)

    def class_sums(self, y: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """These Tc classes' share of the class attention's sums over classes.

        y (B, Tc, C, h, w), text (Tc, G) -> kv (B, h*w, H, d, d), k_sum (B, h*w, H, d).
        """
        b, _, _, h, w = y.shape
        kv, k_sum = self.classes.sums(_tokens(y), text)  # (B*h*w, H, d, d), (B*h*w, H, d)
        return kv.reshape(b, h * w, *kv.shape[1:]), k_sum.reshape(b, h * w, *k_sum.shape[1:])

    def class_attend(self, y: torch.Tensor, text: torch.Tensor, kv: torch.Tensor, k_sum: torch.Tensor) -> torch.Tensor:
        """Class attention for Tc classes, given the sums over all classes (``class_sums`` added up).

        y (B, Tc, C, h, w), text (Tc, G), kv (B, h*w, H, d, d), k_sum (B, h*w, H, d)
        -> the block's output x (B, Tc, C, h, w).
        """
        b, tc, c, h, w = y.shape
        out = self.classes.attend(_tokens(y), text, kv.flatten(0, 1), k_sum.flatten(0, 1))  # (B*h*w, Tc, C)
        return out.reshape(b, h, w, tc, c).permute(0, 3, 4, 1, 2)  # (B, Tc, C, h, w)


def _tokens(y: torch.Tensor) -> torch.Tensor:
    """(B, Tc, C, h, w) -> (B*h*w, Tc, C): one class sequence per pixel."""
    b, tc, c, h, w = y.shape
    return y.permute(0, 3, 4, 1, 2).reshape(b * h * w, tc, c)


def upsample_masks(masks: torch.Tensor) -> torch.Tensor:
    """(N, 1, h, w) -> (N, 1, 4h, 4w): SAM's mask input is 4x its embedding grid."""
    return F.interpolate(masks, scale_factor=4.0, mode="bilinear", align_corners=False)
