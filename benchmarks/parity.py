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
TOLERANCES: dict[str, tuple[float, float]] = {"fp32": (1e-4, 1e-4), "fp16": (1e-2, 1e-2), "bf16": (5e-2, 5e-2)}
COSINE_FLOOR: dict[str, float] = {"fp32": 0.9999, "fp16": 0.997, "bf16": 0.99}


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


def task_parity(reference: np.ndarray, candidate: np.ndarray) -> TaskParity:
    """Arg-max agreement and mIoU of ``candidate`` labels against ``reference`` labels."""
    if reference.shape != candidate.shape:
        raise ValueError(f"label map shape {candidate.shape} differs from the reference's {reference.shape}")
    ref = reference.astype(np.int64).ravel()
    cand = candidate.astype(np.int64).ravel()
    agreement = float((ref == cand).mean()) if ref.size else 1.0
    n = int(max(ref.max(initial=0), cand.max(initial=0))) + 1
    confusion = np.bincount(ref * n + cand, minlength=n * n).reshape(n, n)  # rows: reference
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    present = union > 0
    miou = float((inter[present] / union[present]).mean()) if present.any() else 1.0
    return TaskParity(pixels=int(ref.size), agreement=agreement, miou=miou, classes_compared=int(present.sum()))
