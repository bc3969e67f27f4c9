"""Confusion-matrix segmentation metrics: mIoU, per-class IoU, pixel accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SegMetrics:
    """What :meth:`ConfusionMatrix.metrics` returns."""

    miou: float  # mean IoU over the classes that occur (in the labels or the predictions)
    pixel_accuracy: float  # correct / labelled pixels
    mean_accuracy: float  # mean per-class recall over the classes present in the labels
    iou: list[float]  # per class; NaN where the class occurs in neither labels nor predictions
    pixels: int  # labelled pixels counted

    def to_dict(self, class_names: list[str] | None = None) -> dict[str, object]:
        names = class_names or [str(i) for i in range(len(self.iou))]
        return {
            "miou": self.miou,
            "pixel_accuracy": self.pixel_accuracy,
            "mean_accuracy": self.mean_accuracy,
            "pixels": self.pixels,
            "iou": {n: (None if np.isnan(v) else v) for n, v in zip(names, self.iou, strict=True)},
        }


class ConfusionMatrix:
    """Accumulates ``counts[label, prediction]`` over images; labels equal to ``ignore_index``
    are not counted. Predictions outside ``[0, num_classes)`` are an error."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray, label: np.ndarray) -> None:
        """prediction, label: (H, W) integer arrays of the same shape."""
        prediction, label = np.asarray(prediction), np.asarray(label)
        if prediction.shape != label.shape:
            raise ValueError(f"prediction shape {prediction.shape} differs from label shape {label.shape}")
        valid = label != self.ignore_index
        lab = label[valid].astype(np.int64)
        pred = prediction[valid].astype(np.int64)
        k = self.num_classes
        if lab.size and (lab.min() < 0 or lab.max() >= k):
            raise ValueError(f"label values outside 0..{k - 1} (ignore {self.ignore_index})")
        if pred.size and (pred.min() < 0 or pred.max() >= k):
            raise ValueError(f"prediction values outside 0..{k - 1}")
        self.counts += np.bincount(lab * k + pred, minlength=k * k).reshape(k, k)

    def merge(self, other: ConfusionMatrix) -> None:
        self.counts += other.counts

    def metrics(self) -> SegMetrics:
        c = self.counts.astype(np.float64)
        tp = np.diag(c)
        gt = c.sum(axis=1)  # labelled pixels per class
        pred = c.sum(axis=0)  # predicted pixels per class
        union = gt + pred - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            recall = np.where(gt > 0, tp / gt, np.nan)
        total = c.sum()
        return SegMetrics(
            miou=float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
            pixel_accuracy=float(tp.sum() / total) if total > 0 else float("nan"),
            mean_accuracy=float(np.nanmean(recall)) if np.any(gt > 0) else float("nan"),
            iou=[float(v) for v in iou],
            pixels=int(total),
        )
