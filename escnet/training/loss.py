"""Binary cross-entropy over one-hot targets, the ignore label excluded."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segmentation_bce(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Mean BCE-with-logits of every class map against its one-hot target.

    logits (B, T, h, w), any resolution: bilinearly resized to the labels' (H, W).
    labels (B, H, W) int64, class indices in [0, T) or ``ignore_index``.
    Ignored pixels contribute nothing (to the sum or to the count); with no labelled pixel the
    loss is 0 (still connected to the graph, so every rank runs the same backward).
    """
    b, t = logits.shape[:2]
    if labels.shape[0] != b or labels.dim() != 3:
        raise ValueError(f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, labels.shape[-2:], mode="bilinear", align_corners=False)  # (B, T, H, W)
    valid = labels != ignore_index  # (B, H, W)
    if bool(((labels[valid] < 0) | (labels[valid] >= t)).any()):
        raise ValueError(f"label values outside 0..{t - 1} (ignore {ignore_index})")
    target = F.one_hot(torch.where(valid, labels, 0), t).permute(0, 3, 1, 2).to(logits.dtype)  # (B, T, H, W)
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")  # (B, T, H, W)
    mask = valid.unsqueeze(1).to(per_pixel.dtype)  # (B, 1, H, W)
    count = mask.sum() * t
    return (per_pixel * mask).sum() / count.clamp(min=1.0)
