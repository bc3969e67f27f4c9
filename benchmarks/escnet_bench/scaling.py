"""Least-squares cost models: ``y = a + b * x`` for latency or memory against classes or batch.

With the fitted per-class cost ``b`` a user predicts a vocabulary the run did not measure
(e.g. 2000 classes) as ``a + b * 2000``; ``r2`` says how well a straight line describes the
measured points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LinearFit:
    """``y = intercept + slope * x`` fitted to ``points`` (x, y) pairs."""

    intercept: float
    slope: float
    r2: float | None  # None with fewer than 3 points (a line through 2 is exact) or no spread in y
    points: int

    def predict(self, x: float) -> float:
        return self.intercept + self.slope * x

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_linear(xs: Sequence[float], ys: Sequence[float]) -> LinearFit:
    """Ordinary least squares on at least two distinct x values."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("xs and ys must be 1-D sequences of the same length")
    if len(np.unique(x)) < 2:
        raise ValueError("a linear fit needs at least two distinct x values")
    design = np.stack([np.ones_like(x), x], axis=1)  # (n, 2)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - (a + b * x)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 and len(x) > 2 else None
    return LinearFit(intercept=float(a), slope=float(b), r2=r2, points=len(x))
