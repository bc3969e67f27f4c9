"""Image -> encoder input, as escnet/inference.py's ``preprocess`` + ``predict_scores`` do it.

The reference normalises at the image's own size (uint8 / 255, then (x - mean) / std in float32)
and resizes the normalised image to each view's size. Normalisation is per pixel, so only the
source rows a resize reads are normalised here: same numbers, bounded memory for large images.
"""

from __future__ import annotations

import numpy as np

from escnet_runtime.contract import Preprocess
from escnet_runtime.errors import InputError
from escnet_runtime.resize import F32, AxisWeights, axis_weights, resize_height, resize_width


def check_image(image: object) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array, or a one-line InputError saying what it is instead."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must have shape (H, W, 3) (RGB), got {image.shape}")
    if image.dtype != np.uint8:
        raise InputError(f"image must be uint8 (0..255), got {image.dtype}; convert it first")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"image is empty ({image.shape[0]}x{image.shape[1]})")
    return image


def normalize_rows(image: np.ndarray, rows: np.ndarray, pre: Preprocess) -> np.ndarray:
    """image (H, W, 3) uint8, rows (k,) -> (3, k, W) float32 CLIP-normalised."""
    x = image[rows].transpose(2, 0, 1).astype(F32) / F32(round(1.0 / pre.scale))  # (3, k, W)
    mean = np.asarray(pre.mean, dtype=F32).reshape(3, 1, 1)
    std = np.asarray(pre.std, dtype=F32).reshape(3, 1, 1)
    return (x - mean) / std


def normalize(image: np.ndarray, pre: Preprocess) -> np.ndarray:
    """image (H, W, 3) uint8 -> (3, H, W) float32 CLIP-normalised, at the image's own size."""
    return normalize_rows(image, np.arange(image.shape[0]), pre)


def view(image: np.ndarray, size: int, pre: Preprocess) -> np.ndarray:
    """image (H, W, 3) uint8 -> (3, size, size) float32: normalise, then bilinear resize."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return normalize(image, pre)
    hy, wx = axis_weights(h, size), axis_weights(w, size)
    rows = np.unique(np.concatenate([hy.i0, hy.i1]))  # (k,) source rows the resize reads
    local = np.searchsorted(rows, np.arange(h))  # source row -> its index in ``rows``
    narrow = resize_width(normalize_rows(image, rows, pre), wx)  # (3, k, size)
    return resize_height(narrow, AxisWeights(local[hy.i0], local[hy.i1], hy.l0, hy.l1))
