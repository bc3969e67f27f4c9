"""The accuracy gates every reduced-precision backend must pass (bf16, int8), on trained weights.

Against the fp32 runtime (ONNX Runtime CPU on the fp32 artifacts), on held-out labelled scenes:
- mIoU: the candidate's held-out mIoU within ``miou_tolerance`` points (0.5) of the fp32 runtime's,
  either way (a gain that large is as much a different model as a loss);
- labels: agreement with the fp32 labels on confident pixels (fp32 top-2 class-score margin
  > ``confident_margin``, 0.05) of at least ``min_agreement`` (99.5 %).
Random weights leave every class tied, so a label gate on them measures ties: when fewer than
``min_confident_share`` of the held-out pixels are confident, the verdict is "not judged".
``escnet-export quantize`` enforces these gates; the bench prints them for every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from escnet.data.segmentation import Sample
from escnet.evaluation.metrics import ConfusionMatrix

Verdict = Literal["pass", "fail", "not judged"]
Predictor = Callable[[np.ndarray], np.ndarray]  # image (H, W, 3) uint8 -> labels (H, W)


@dataclass(frozen=True)
class GateRule:
    """The thresholds (deployment.md, "Precision")."""

    miou_tolerance: float = 0.5  # mIoU points (of 100) from the fp32 runtime's, either way
    min_agreement: float = 0.995  # label agreement with fp32 on confident pixels
    confident_margin: float = 0.05  # fp32 top-2 class-score margin that makes a pixel confident
    min_confident_share: float = 0.01  # fewer confident pixels than this share: not judged

    def check(self) -> None:
        """ValueError (one line) for a threshold outside its range."""
        if not 0.0 <= self.miou_tolerance <= 100.0:
            raise ValueError(f"mIoU tolerance {self.miou_tolerance}: expected 0 to 100 points")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"min agreement {self.min_agreement}: expected a fraction from 0 to 1")


@dataclass(frozen=True)
class Reference:
    """The fp32 runtime on the held-out scenes: labels (H, W) and confident masks per scene."""

    labels: tuple[np.ndarray, ...]
    confident: tuple[np.ndarray, ...]
    miou: float  # in points (0..100)
    num_classes: int

    @property
    def pixels(self) -> int:
        return sum(int(c.size) for c in self.confident)

    @property
    def confident_pixels(self) -> int:
        return sum(int(c.sum()) for c in self.confident)


@dataclass(frozen=True)
class GateRow:
    """One backend's figures and verdict."""

    backend: str
    precision: str
    miou: float
    miou_delta: float  # points, candidate - fp32
    agreement_all: float
    agreement_confident: float | None
    confident_pixels: int
    pixels: int
    verdict: Verdict
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top2_margin(scores: np.ndarray) -> np.ndarray:
    """scores (T, H, W) -> the margin between the best and second-best class per pixel (H, W);
    1.0 for a one-class vocabulary."""
    if scores.shape[0] < 2:
        return np.ones(scores.shape[1:], dtype=np.float32)
    top = np.partition(scores, scores.shape[0] - 2, axis=0)[-2:]
    return (top[1] - top[0]).astype(np.float32)


def _miou(samples: Sequence[Sample], labels: Sequence[np.ndarray], num_classes: int) -> float:
    cm = ConfusionMatrix(num_classes)
    for sample, pred in zip(samples, labels, strict=True):
        cm.update(pred, sample.label)
    value = cm.metrics().miou
    return 100.0 * float(value) if np.isfinite(value) else 0.0


def reference_of(
    segment: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    samples: Sequence[Sample],
    num_classes: int,
    rule: GateRule,
) -> Reference:
    """``segment``: image -> (labels (H, W), scores (T, H, W)) of the fp32 runtime."""
    labels, confident = [], []
    for sample in samples:
        lab, scores = segment(sample.image)
        labels.append(np.asarray(lab))
        confident.append(top2_margin(np.asarray(scores)) > rule.confident_margin)
    return Reference(tuple(labels), tuple(confident), _miou(samples, labels, num_classes), num_classes)


def judge(
    backend: str, precision: str, predict: Predictor, samples: Sequence[Sample], ref: Reference, rule: GateRule
) -> GateRow:
    """Run ``predict`` on the held-out scenes and judge it against ``ref``."""
    labels = [np.asarray(predict(s.image)) for s in samples]
    same_all = sum(int((a == b).sum()) for a, b in zip(labels, ref.labels, strict=True))
    same_conf = sum(int((a == b)[c].sum()) for a, b, c in zip(labels, ref.labels, ref.confident, strict=True))
    miou = _miou(samples, labels, ref.num_classes)
    n_conf, n_all = ref.confident_pixels, ref.pixels
    agreement = same_conf / n_conf if n_conf else None
    delta = miou - ref.miou
    verdict: Verdict
    if n_conf < rule.min_confident_share * n_all:
        verdict = "not judged"
        why = f"only {n_conf} of {n_all} held-out pixels are confident (fp32 top-2 margin > {rule.confident_margin})"
    else:
        failures = []
        if abs(delta) > rule.miou_tolerance:
            failures.append(f"mIoU {delta:+.2f} points (allowed +-{rule.miou_tolerance:g})")
        if agreement is not None and agreement < rule.min_agreement:
            failures.append(f"confident-pixel agreement {agreement:.2%} (needs {rule.min_agreement:.1%})")
        verdict = "fail" if failures else "pass"
        why = "; ".join(failures)
    return GateRow(backend, precision, miou, delta, same_all / max(1, n_all), agreement, n_conf, n_all, verdict, why)


def overall(rows: Sequence[GateRow]) -> Verdict:
    """fail if any row fails; else not judged if any is not judged; else pass."""
    verdicts = {r.verdict for r in rows}
    if "fail" in verdicts:
        return "fail"
    return "not judged" if "not judged" in verdicts or not rows else "pass"


def gate_table(ref: Reference, rows: Sequence[GateRow], rule: GateRule) -> str:
    """The gate table as Markdown lines."""
    share = ref.confident_pixels / max(1, ref.pixels)
    lines = [
        f"fp32 runtime: held-out mIoU {ref.miou:.2f}; confident pixels (top-2 margin > {rule.confident_margin}) "
        f"{ref.confident_pixels} of {ref.pixels} ({share:.1%})",
        f"gates: mIoU within {rule.miou_tolerance:g} points, confident-pixel agreement >= {rule.min_agreement:.1%}",
        "| backend | precision | mIoU | delta | agree (all) | agree (confident) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        conf = "-" if r.agreement_confident is None else f"{r.agreement_confident:.4%}"
        verdict = r.verdict + (f": {r.why}" if r.why and r.verdict == "fail" else "")
        lines.append(
            f"| {r.backend} | {r.precision} | {r.miou:.2f} | {r.miou_delta:+.2f} | {r.agreement_all:.4%} | {conf} "
            f"| {verdict} |"
        )
    return "\n".join(lines)
