"""Reference inference: preprocessing and the single-view / sliding-window protocols.

This is the numerical definition the runtime reproduces without torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .modeling.model import CLIP_MEAN, CLIP_STD, ESCNet

SLIDING_STRIDE_FRACTION = 2 / 3  # CAT-Seg: windows overlap by a third
SLIDING_WINDOWS_PER_SIDE = 2


def sliding_geometry(size: int) -> tuple[int, int]:
    """(canvas, stride) of the sliding-window protocol for S x S windows.

    CAT-Seg resizes to 640 and takes 384 windows at stride 256: 2 x 2 windows tiling the canvas
    exactly. For other S the canvas scales the same way (S + stride), so every pixel is covered
    (tiny, S = 128: canvas 213, stride 85; vit-l14, S = 336: canvas 560, stride 224).
    """
    stride = int(size * SLIDING_STRIDE_FRACTION)
    return size + stride * (SLIDING_WINDOWS_PER_SIDE - 1), stride


def preprocess(image_uint8: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, size, size) CLIP-normalised float32 (bilinear, no antialias).

    ``size`` None keeps the image's own size (for :func:`predict_scores`, which resizes).
    """
    x = image_uint8.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255.0  # (1, 3, H, W)
    if size is not None and x.shape[-2:] != (size, size):
        x = F.interpolate(x, (size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _views_logits(model: ESCNet, views: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """views (V, 3, S, S) -> probabilities (V, T, S, S): sigmoid of logits upsampled to S."""
    logits = model.decode(*model.encode_image(views), text)
    size = views.shape[-1]
    return F.interpolate(logits, (size, size), mode="bilinear", align_corners=False).sigmoid()


@torch.no_grad()
def predict_scores(
    model: ESCNet, image: torch.Tensor, text: torch.Tensor, out_size: tuple[int, int], sliding_window: bool = False
) -> torch.Tensor:
    """Class scores at the output size.

    image (1, 3, H, W) CLIP-normalised (any size), text (T, P, D) -> (T, out_h, out_w) in [0, 1].
    Single view: resize to S, run, upsample. Sliding window (CAT-Seg's protocol, see
    :func:`sliding_geometry`): resize to the canvas (640 for S = 384), four S windows at stride
    256 and one global view; window scores are averaged where they
    overlap, then averaged with the global view.
    """
    s = model.config.image_size
    if not sliding_window:
        view = F.interpolate(image, (s, s), mode="bilinear", align_corners=False)
        scores = _views_logits(model, view, text)[0]
    else:
        big, stride = sliding_geometry(s)
        full = F.interpolate(image, (big, big), mode="bilinear", align_corners=False)
        windows = F.unfold(full, kernel_size=s, stride=stride)  # (1, 3*s*s, L)
        n = windows.shape[-1]
        windows = windows[0].T.reshape(n, 3, s, s)  # (L, 3, s, s)
        glob = F.interpolate(image, (s, s), mode="bilinear", align_corners=False)
        probs = _views_logits(model, torch.cat([windows, glob]), text)  # (L + 1, T, s, s)
        t = probs.shape[1]
        local = probs[:-1].reshape(n, t * s * s).T.unsqueeze(0)  # (1, T*s*s, L)
        summed = F.fold(local, (big, big), kernel_size=s, stride=stride)  # (1, T, big, big)
        count = F.fold(
            F.unfold(torch.ones(1, 1, big, big), kernel_size=s, stride=stride), (big, big), kernel_size=s, stride=stride
        )
        global_up = F.interpolate(probs[-1:], (big, big), mode="bilinear", align_corners=False)
        scores = ((summed / count + global_up) / 2.0)[0]
    return F.interpolate(scores[None], out_size, mode="bilinear", align_corners=False)[0]
