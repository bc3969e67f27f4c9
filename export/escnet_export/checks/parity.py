"""Numeric parity of exported graphs against PyTorch: metrics, per-graph tolerances, a table.

Tolerances (fp32 ONNX Runtime against fp32 PyTorch; both run the same maths, so differences are
summation order only):
- logits (decoder and end to end): max-abs <= 1e-4 and arg-max agreement >= 99.9 % of pixels,
  the deployment design's figures; the arg-max is what a user sees.
- encoder features: cosine >= 0.99999 and max-abs <= 1e-4 x max(1, max |reference|): float32
  rounding grows with the magnitude of the activations (a 12-layer ViT's dense features reach
  tens), so the bound scales with the tensor; a real export bug moves the cosine far more.
- text embeddings are unit vectors, so the same bound is effectively absolute 1e-4.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Tolerance:
    max_abs: float
    relative: bool = False  # max_abs is scaled by max(1, max |reference|)
    cosine: float | None = None
    argmax: float | None = None  # fraction of pixels with the same arg-max over axis 1


ENCODER_TOLERANCE = Tolerance(max_abs=1e-4, relative=True, cosine=0.99999)
LOGITS_TOLERANCE = Tolerance(max_abs=1e-4, argmax=0.999)


# Comparison is a plain record of one tensor's figures; its field list resembles other small
# records (trt.precision.PinnedNode: name, op, outputs, reason) only in shape: typed fields of
# different meaning, no logic to factor out.
@dataclass(frozen=True)
class Comparison:
    graph: str
    tensor: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    cosine: float
    argmax: float | None
    bound: float  # the max-abs bound actually applied
    tolerance: Tolerance

    @property
    def failures(self) -> list[str]:
        out = []
        if not np.isfinite(self.max_abs) or self.max_abs > self.bound:
            out.append(f"max-abs {self.max_abs:.2e} > {self.bound:.2e}")
        if self.tolerance.cosine is not None and not self.cosine >= self.tolerance.cosine:
            out.append(f"cosine {self.cosine:.6f} < {self.tolerance.cosine}")
        if self.tolerance.argmax is not None and not (self.argmax or 0.0) >= self.tolerance.argmax:
            out.append(f"arg-max {self.argmax:.4%} < {self.tolerance.argmax:.1%}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, object]:
        return {
            "graph": self.graph,
            "tensor": self.tensor,
            "shape": list(self.shape),
            "max_abs": self.max_abs,
            "mean_abs": self.mean_abs,
            "cosine": self.cosine,
            "argmax_agreement": self.argmax,
            "max_abs_bound": self.bound,
            "passed": self.passed,
        }


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    den = np.linalg.norm(a64) * np.linalg.norm(b64)
    return float(a64 @ b64 / den) if den > 0 else float(np.array_equal(a64, b64))


def argmax_agreement(reference: np.ndarray, actual: np.ndarray) -> float:
    """Fraction of (batch, pixel) positions whose arg-max over axis 1 (classes) agrees."""
    return float(np.mean(reference.argmax(axis=1) == actual.argmax(axis=1)))


def compare(graph: str, tensor: str, reference: np.ndarray, actual: np.ndarray, tol: Tolerance) -> Comparison:
    if reference.shape != actual.shape:
        raise ValueError(f"{graph}/{tensor}: shape {actual.shape} differs from the reference {reference.shape}")
    diff = np.abs(reference.astype(np.float64) - actual.astype(np.float64))
    scale = max(1.0, float(np.abs(reference).max())) if tol.relative and reference.size else 1.0
    return Comparison(
        graph=graph,
        tensor=tensor,
        shape=tuple(reference.shape),
        max_abs=float(diff.max()) if diff.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        cosine=cosine(reference, actual),
        argmax=argmax_agreement(reference, actual) if tol.argmax is not None else None,
        bound=tol.max_abs * scale,
        tolerance=tol,
    )


def parity_table(rows: list[Comparison], title: str = "ONNX Runtime vs PyTorch (fp32)") -> Table:
    table = Table(title=title)
    for col in ("graph", "tensor", "shape", "max-abs", "bound", "mean-abs", "cosine", "arg-max", "ok"):
        table.add_column(col, justify="left" if col in ("graph", "tensor", "shape") else "right")
    for r in rows:
        table.add_row(
            r.graph,
            r.tensor,
            "x".join(map(str, r.shape)),
            f"{r.max_abs:.2e}",
            f"{r.bound:.1e}",
            f"{r.mean_abs:.2e}",
            f"{r.cosine:.7f}",
            "-" if r.argmax is None else f"{r.argmax:.4%}",
            "[green]yes[/]" if r.passed else "[red]NO[/]",
        )
    return table


def save_parity_report(rows: list[Comparison], path: Path) -> Path:
    """The full parity table and each failure, as plain text at ``path`` (written atomically)."""
    from escnet_runtime.fileio import write_bytes_atomic

    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(parity_table(rows))
    failures = [f"{r.graph}/{r.tensor}: {'; '.join(r.failures)}" for r in rows if not r.passed]
    write_bytes_atomic(path, (buffer.getvalue() + "\n".join(failures) + "\n").encode())
    return path
