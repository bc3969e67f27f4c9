"""Training augmentation: random rescale, random crop to a square, horizontal flip.

Deterministic given the ``numpy`` generator passed in, so a resumed run sees the same crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..modeling.model import CLIP_MEAN, CLIP_STD
from .segmentation import Sample


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 384  # output side, pixels (the model's image size)
    scale_min: float = 0.75  # short side = crop * U(scale_min, scale_max) before cropping
    scale_max: float = 1.5
    flip: bool = True


def normalise(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32, CLIP mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32) / 255.0  # (3, H, W)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (x - mean) / std


def augment(
    sample: Sample, config: AugmentConfig, rng: np.random.Generator, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample -> image (3, crop, crop) float32 CLIP-normalised, label (crop, crop) int64.

    Where the rescaled image is smaller than the crop, the label is padded with ``ignore_index``.
    """
    h, w = sample.label.shape
    short = config.crop * rng.uniform(config.scale_min, config.scale_max)
    factor = short / min(h, w)
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    image = np.asarray(Image.fromarray(sample.image).resize((nw, nh), Image.BILINEAR))
    label = np.asarray(Image.fromarray(sample.label.astype(np.int32), mode="I").resize((nw, nh), Image.NEAREST))
    c = config.crop
    top = int(rng.integers(0, max(nh - c, 0) + 1))
    left = int(rng.integers(0, max(nw - c, 0) + 1))
    image = image[top : top + c, left : left + c]
    label = label[top : top + c, left : left + c]
    out_img = np.zeros((c, c, 3), dtype=np.uint8)
    out_lbl = np.full((c, c), ignore_index, dtype=np.int64)
    out_img[: image.shape[0], : image.shape[1]] = image
    out_lbl[: label.shape[0], : label.shape[1]] = label
    if config.flip and rng.uniform() < 0.5:
        out_img, out_lbl = out_img[:, ::-1], out_lbl[:, ::-1]
    return normalise(out_img), torch.from_numpy(np.ascontiguousarray(out_lbl))
