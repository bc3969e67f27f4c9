"""Parity against the PyTorch fp32 reference: tensor level per graph output, task level per label map.

Tensor level: max-abs and mean-abs error, cosine similarity, and polygraphy's comparator
(``SimpleCompareFunc``: element-wise ``|a - b| <= atol + rtol * |b|``) at the precision's
tolerance. Task level: the fraction of pixels whose arg-max class agrees, and the mIoU of the
backend's labels taking PyTorch's labels as ground truth (mean over the classes present in
either map).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# fp32: deployment.md's figure for ONNX Runtime vs PyTorch logits (~1e-4); reduced precision:
# looser element-wise bounds, judged mostly by the cosine (polygraphy's fp16 rule of thumb 0.997).
# Task-level gates (deployment.md): fp32 backends as strict as ONNX Runtime (every graph output
# max-abs <= 1e-4, labels >= 99.9%); reduced precision is judged on confident pixels (the fp32
# reference's top-2 score margin > CONFIDENT_MARGIN): random weights leave classes nearly tied, and
# all-pixel agreement then measures the ties, not the engine. All-pixel agreement is reported too.
CONFIDENT_MARGIN = 0.05
GATES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-4, "agreement": 0.999},
    "fp16": {"agreement_confident": 0.99},
    "bf16": {"agreement_confident": 0.99},
    "int8": {"agreement_confident": 0.995},  # escnet_export.quantize.gates.GateRule.min_agreement
}
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 1e-4), "fp16": (1e-2, 1e-2), "bf16": (5e-2, 5e-2), "int8": (1e-1, 1e-1),
}  # fmt: skip
COSINE_FLOOR: dict[str, float] = {"fp32": 0.9999, "fp16": 0.997, "bf16": 0.99, "int8": 0.98}


@dataclass(frozen=True)
class TensorParity:
    """One output tensor of one graph against the reference."""

    output: str
    shape: list[int]
    max_abs: float
    mean_abs: float
    cosine: float
    atol: float
    rtol: float
    polygraphy_pass: bool | None  # None when polygraphy is not installed
    passed: bool  # polygraphy's verdict (or the same rule in numpy) and cosine >= the floor

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TaskParity:
    """A label map (B, H, W) against the reference's."""

    pixels: int
    agreement: float  # fraction of pixels with the same class
    miou: float  # mean IoU against the reference labels, over classes present in either
    classes_compared: int
    confident_pixels: int | None = None  # pixels whose reference top-2 margin > CONFIDENT_MARGIN
    agreement_confident: float | None = None  # agreement on those pixels (None: no margins given)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two tensors flattened (float64); 1.0 when both are all zero."""
    x = a.astype(np.float64).ravel()
    y = b.astype(np.float64).ravel()
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 and ny == 0:
        return 1.0
    if nx == 0 or ny == 0:
        return 0.0
    return float(np.dot(x, y) / (nx * ny))


def _polygraphy_pass(name: str, reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float) -> bool | None:
    try:
        from polygraphy.comparator import Comparator, IterationResult, RunResults, SimpleCompareFunc
        from polygraphy.logger import G_LOGGER
    except ImportError:
        return None
    results = RunResults(
        [
            ("reference", [IterationResult({name: reference}, runner_name="reference")]),
            ("candidate", [IterationResult({name: candidate}, runner_name="candidate")]),
        ]
    )
    # polygraphy logs every statistic at INFO; the figures we need are computed here.
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL), contextlib.redirect_stdout(io.StringIO()):
        verdict = Comparator.compare_accuracy(results, compare_func=SimpleCompareFunc(atol=atol, rtol=rtol))
    return bool(verdict)


def tensor_parity(name: str, reference: np.ndarray, candidate: np.ndarray, precision: str = "fp32") -> TensorParity:
    """Compare one output with the reference at ``precision``'s tolerances."""
    if reference.shape != candidate.shape:
        raise ValueError(f"{name}: shape {candidate.shape} differs from the reference's {reference.shape}")
    ref = np.ascontiguousarray(reference, dtype=np.float32)  # polygraphy views arrays: contiguous only
    cand = np.ascontiguousarray(candidate, dtype=np.float32)
    atol, rtol = TOLERANCES[precision]
    diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64))
    cos = cosine(ref, cand)
    poly = _polygraphy_pass(name, ref, cand, atol, rtol)
    elementwise = poly if poly is not None else bool(np.all(diff <= atol + rtol * np.abs(ref)))
    return TensorParity(
        output=name,
        shape=list(ref.shape),
        max_abs=float(diff.max()) if diff.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        cosine=cos,
        atol=atol,
        rtol=rtol,
        polygraphy_pass=poly,
        passed=bool(elementwise and cos >= COSINE_FLOOR[precision]),
    )


def task_parity(reference: np.ndarray, candidate: np.ndarray, margins: np.ndarray | None = None) -> TaskParity:
    """Arg-max agreement and mIoU of ``candidate`` labels against ``reference`` labels; with the
    reference's top-2 ``margins`` also the agreement on confident pixels (margin > CONFIDENT_MARGIN)."""
    if reference.shape != candidate.shape:
        raise ValueError(f"label map shape {candidate.shape} differs from the reference's {reference.shape}")
    confident_pixels = agreement_confident = None
    if margins is not None:
        confident = margins.ravel() > CONFIDENT_MARGIN
        confident_pixels = int(confident.sum())
        same = reference.ravel() == candidate.ravel()
        agreement_confident = float(same[confident].mean()) if confident_pixels else None
    ref = reference.astype(np.int64).ravel()
    cand = candidate.astype(np.int64).ravel()
    agreement = float((ref == cand).mean()) if ref.size else 1.0
    n = int(max(ref.max(initial=0), cand.max(initial=0))) + 1
    confusion = np.bincount(ref * n + cand, minlength=n * n).reshape(n, n)  # rows: reference
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    present = union > 0
    miou = float((inter[present] / union[present]).mean()) if present.any() else 1.0
    return TaskParity(int(ref.size), agreement, miou, int(present.sum()), confident_pixels, agreement_confident)


def parity_gate(precision: str, max_abs: float | None, task: TaskParity, graphs_judged: bool = True) -> bool | None:
    """Whether a backend passes its precision's gate (``GATES``) at one point; None: not judged.

    ``graphs_judged`` False: the backend offers no per-graph call (the C++ runtime), so its
    gate is the label rule alone.
    """
    rule = GATES.get(precision)
    if rule is None:
        return None
    checks = []
    if "max_abs" in rule and graphs_judged:
        checks.append(max_abs is not None and max_abs <= rule["max_abs"])
    if "agreement" in rule:
        checks.append(task.agreement >= rule["agreement"])
    if "agreement_confident" in rule:
        if task.agreement_confident is None:
            return None
        checks.append(task.agreement_confident >= rule["agreement_confident"])
    return all(checks)
