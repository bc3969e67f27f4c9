"""CAT-Seg's sliding-window protocol (escnet/inference.py): windows, their fold, the global view.

The image is resized to BIG x BIG (the manifest's ``sliding_window.canvas``; 640 for S = 384:
2 x 2 windows tile it exactly); S x S windows at the manifest's stride (256 for S = 384), at
F.unfold's positions (row-major); window probabilities are summed where they overlap (in F.fold's
order), divided by the cover count, averaged with the global view's probabilities resized to BIG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from escnet_runtime.contract import Preprocess, SlidingWindow, legacy_sliding_window
from escnet_runtime.preprocess import view
from escnet_runtime.resize import F32, resize_bilinear


@dataclass(frozen=True)
class WindowGrid:
    """Window corners over a big x big canvas, in F.unfold's order (row-major)."""

    big: int
    size: int
    stride: int

    @staticmethod
    def from_spec(spec: SlidingWindow) -> WindowGrid:
        """The geometry the manifest gives (the exporter writes the reference's)."""
        return WindowGrid(spec.canvas, spec.window, spec.stride)

    @staticmethod
    def for_size(size: int) -> WindowGrid:
        """The geometry a format 1.0 manifest (no ``sliding_window``) was used with."""
        return WindowGrid.from_spec(legacy_sliding_window(size))

    @property
    def per_side(self) -> int:
        return (self.big - self.size) // self.stride + 1

    @property
    def corners(self) -> list[tuple[int, int]]:
        """(y, x) of every window, row-major: window l is at (l // n, l % n) * stride."""
        n = self.per_side
        return [(i * self.stride, j * self.stride) for i in range(n) for j in range(n)]

    def count(self) -> np.ndarray:
        """(big, big) float32: how many windows cover each pixel."""
        c = np.zeros((self.big, self.big), dtype=F32)
        for y, x in self.corners:
            c[y : y + self.size, x : x + self.size] += 1
        return c


def sliding_views(image: np.ndarray, pre: Preprocess, grid: WindowGrid) -> np.ndarray:
    """image (H, W, 3) uint8 -> views (L + 1, 3, S, S): the L windows, then the global view."""
    full = view(image, grid.big, pre)  # (3, big, big)
    s = grid.size
    windows = [full[:, y : y + s, x : x + s] for y, x in grid.corners]
    return np.stack([*windows, view(image, s, pre)])


class FoldAccumulator:
    """Sums window probabilities into the canvas; windows must be added last-to-first (F.fold's order)."""

    def __init__(self, grid: WindowGrid, classes: int) -> None:
        self.grid = grid
        self.summed = np.zeros((classes, grid.big, grid.big), dtype=F32)  # (T, big, big)
        self._next = len(grid.corners) - 1

    def add(self, index: int, probs: np.ndarray) -> None:
        """probs (T, S, S) of window ``index``; indices must come in descending order."""
        if index != self._next:
            raise ValueError(f"windows must be added in descending order; expected {self._next}, got {index}")
        y, x = self.grid.corners[index]
        s = self.grid.size
        self.summed[:, y : y + s, x : x + s] += probs
        self._next -= 1

    def finish(self, global_probs: np.ndarray) -> np.ndarray:
        """global_probs (T, S, S) -> scores (T, big, big) = (summed / count + global resized) / 2."""
        if self._next != -1:
            raise ValueError(f"{self._next + 1} windows were never added")
        with np.errstate(invalid="ignore", divide="ignore"):
            local = self.summed / self.grid.count()
        return (local + resize_bilinear(global_probs, (self.grid.big, self.grid.big))) / F32(2)
