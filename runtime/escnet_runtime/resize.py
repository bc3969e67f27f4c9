"""Bilinear resize (align_corners=False, no antialias) in numpy, as torch's F.interpolate computes it.

Per axis, in float32: scale = in / out; src = fma(scale, dst + 0.5, -0.5), clamped at 0;
i0 = min(floor(src), in - 1); l1 = clamp(src - i0, 0, 1); i1 = i0 + (i0 < in - 1); l0 = 1 - l1.
A pass along an axis is fma(v0, l0, v1 * l1), width first, then height. torch's CPU kernels are
built with FMA contraction (AVX2); these formulas reproduce its float32 results bit for bit (fma is
emulated in float64: the float32 product is exact there; the two roundings agree but in rare ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32
F64 = np.float64


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 a * b + c with one rounding of the product-sum (float64 holds a * b exactly)."""
    out = a.astype(F64)  # in place from here: three float64 temporaries would cost 2x the memory
    out *= b
    out += c
    return out.astype(F32)


@dataclass(frozen=True)
class AxisWeights:
    """Source indices (out,) int64 and weights (out,) float32 along one axis."""

    i0: np.ndarray
    i1: np.ndarray
    l0: np.ndarray
    l1: np.ndarray


def axis_weights(in_size: int, out_size: int) -> AxisWeights:
    """The two source taps and their weights for every output position along one axis."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"resize sizes must be positive, got {in_size} -> {out_size}")
    dst = np.arange(out_size, dtype=F32)
    if in_size == out_size:
        idx = np.arange(out_size, dtype=np.int64)
        return AxisWeights(idx, idx, np.ones(out_size, F32), np.zeros(out_size, F32))
    scale = F32(in_size) / F32(out_size)
    src = (F64(scale) * (dst + F32(0.5)) - 0.5).astype(F32)
    src = np.maximum(src, F32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    l1 = np.clip(src - i0.astype(F32), F32(0), F32(1)).astype(F32)
    i1 = i0 + (i0 < in_size - 1)
    return AxisWeights(i0, i1, (F32(1) - l1).astype(F32), l1)


def resize_width(x: np.ndarray, wx: AxisWeights) -> np.ndarray:
    """x (..., H, W_in) float32 -> (..., H, W_out): the width pass."""
    return _fma(x[..., wx.i0], wx.l0, x[..., wx.i1] * wx.l1)


def resize_height(x: np.ndarray, hy: AxisWeights) -> np.ndarray:
    """x (..., H_in, W) float32 -> (..., H_out, W): the height pass (after the width pass)."""
    return _fma(x[..., hy.i0, :], hy.l0[:, None], x[..., hy.i1, :] * hy.l1[:, None])


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """x (..., H, W) float32 -> (..., size[0], size[1]) float32."""
    x = np.asarray(x, dtype=F32)
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x.copy()
    hy, wx = axis_weights(h, size[0]), axis_weights(w, size[1])
    rows = np.unique(np.concatenate([hy.i0, hy.i1]))  # only the source rows the output reads
    lookup = np.zeros(h, dtype=np.int64)
    lookup[rows] = np.arange(len(rows))
    narrow = resize_width(x[..., rows, :], wx)
    return resize_height(narrow, AxisWeights(lookup[hy.i0], lookup[hy.i1], hy.l0, hy.l1))
