"""Decoder logits -> class scores and labels at the image's size (escnet/inference.py's maths).

Per view: logits (T, 4g, 4g) -> bilinear to (S, S) -> sigmoid. The final scores (T, h, w) are
resized to the image's (H, W) and arg-maxed over classes in blocks of rows, so that a large image
or vocabulary never holds (T, H, W) at once unless the caller asks for the scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .resize import F32, AxisWeights, axis_weights, resize_bilinear, resize_height, resize_width

BLOCK_BYTES = 64 << 20  # working memory per block of output rows


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function, 1 / (1 + exp(-x)), overflow-safe."""
    with np.errstate(over="ignore"):
        return (F32(1) / (F32(1) + np.exp(-x))).astype(F32)


def view_probabilities(logits: np.ndarray, size: int) -> np.ndarray:
    """logits (T, 4g, 4g) float32 -> probabilities (T, size, size): upsample, then sigmoid."""
    return sigmoid(resize_bilinear(logits, (size, size)))


@dataclass(frozen=True)
class Upsampled:
    """labels (H, W) int32 class indices; scores (T, H, W) float32, or None when not asked for."""

    labels: np.ndarray
    scores: np.ndarray | None


def upsample_and_label(scores: np.ndarray, out_size: tuple[int, int], keep_scores: bool = False) -> Upsampled:
    """scores (T, h, w) float32 -> labels (H, W) = argmax over T of scores resized to out_size.

    Rows are processed in blocks; each output value is computed exactly as one full resize
    would compute it. NaN scores win the arg-max, as in torch.
    """
    t, h, w = scores.shape
    out_h, out_w = out_size
    hy, wx = axis_weights(h, out_h), axis_weights(w, out_w)
    labels = np.empty((out_h, out_w), dtype=np.int32)
    full = np.empty((t, out_h, out_w), dtype=F32) if keep_scores else None
    rows_per_block = max(1, BLOCK_BYTES // max(1, 16 * t * out_w))
    for r0 in range(0, out_h, rows_per_block):
        r1 = min(out_h, r0 + rows_per_block)
        i0, i1 = hy.i0[r0:r1], hy.i1[r0:r1]
        src = np.arange(min(i0.min(), i1.min()), max(i0.max(), i1.max()) + 1)  # contiguous source rows
        narrow = resize_width(scores[:, src, :], wx)  # (T, k, W)
        block = resize_height(narrow, AxisWeights(i0 - src[0], i1 - src[0], hy.l0[r0:r1], hy.l1[r0:r1]))
        labels[r0:r1] = np.argmax(block, axis=0)
        if full is not None:
            full[:, r0:r1] = block
    return Upsampled(labels, full)
