"""The evaluation loop: any predictor callable over a data set, confusion-matrix metrics.

A predictor maps an image (H, W, 3) uint8 RGB to a label map (H, W) of indices into the
vocabulary it was given, so the same loop scores the PyTorch model and exported artifacts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.segmentation import Sample
from .metrics import ConfusionMatrix, SegMetrics

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EvalResult:
    metrics: SegMetrics
    images: int
    seconds: float


def evaluate(
    samples: Sequence[Sample],
    predictor: Predictor,
    num_classes: int,
    ignore_index: int = 255,
    merge_from: int | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Run ``predictor`` on each sample and score it against the label.

    ``merge_from``: predicted indices >= it count as class ``merge_from`` (VOC-20b's
    background prompts). ``progress(done, total)`` is called after each image.
    """
    cm = ConfusionMatrix(num_classes, ignore_index)
    total = len(samples) if limit is None else min(limit, len(samples))
    start = time.perf_counter()
    for i in range(total):
        sample = samples[i]
        pred = np.asarray(predictor(sample.image))
        if pred.shape != sample.label.shape:
            raise ValueError(
                f"{sample.name}: predictor returned shape {pred.shape}, expected the label's {sample.label.shape}"
            )
        if merge_from is not None:
            pred = np.minimum(pred, merge_from)
        cm.update(pred, sample.label)
        if progress is not None:
            progress(i + 1, total)
    return EvalResult(cm.metrics(), total, time.perf_counter() - start)
