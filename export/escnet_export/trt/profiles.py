"""TensorRT optimisation profiles: MIN:OPT:MAX ranges for the contract's dynamic axes.

One profile per graph, derived from the contract's input shapes: every named axis (batch,
texts, classes) takes its range, every fixed size stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from escnet_runtime.contract import BATCH, CLASSES, TEXTS, GraphSpec

from escnet_export.errors import ExportError

MAX_AXIS = 1 << 20  # a sanity bound: larger ranges are typos, not deployments

Shape = tuple[int, ...]


@dataclass(frozen=True)
class AxisRange:
    """Sizes an engine accepts along one dynamic axis; ``opt`` is the size TensorRT tunes for."""

    min: int
    opt: int
    max: int

    @staticmethod
    def parse(text: str, what: str) -> AxisRange:
        """``"1:4:16"`` -> AxisRange(1, 4, 16); ``"8"`` -> AxisRange(8, 8, 8). One-line ExportError otherwise."""
        parts = text.strip().split(":")
        if len(parts) == 1:
            parts = parts * 3
        if len(parts) != 3:
            raise ExportError(f"--{what} {text!r}: expected MIN:OPT:MAX (e.g. 1:4:16) or one size")
        try:
            lo, opt, hi = (int(p) for p in parts)
        except ValueError:
            raise ExportError(f"--{what} {text!r}: MIN, OPT and MAX must be whole numbers") from None
        r = AxisRange(lo, opt, hi)
        r.validate(what)
        return r

    def validate(self, what: str) -> None:
        if self.min < 1:
            raise ExportError(f"--{what} {self}: MIN must be at least 1")
        if not self.min <= self.opt <= self.max:
            raise ExportError(f"--{what} {self}: expected MIN <= OPT <= MAX")
        if self.max > MAX_AXIS:
            raise ExportError(f"--{what} {self}: MAX over {MAX_AXIS}")

    def scaled(self, factor: int, cap: int | None = None) -> AxisRange:
        """This range times ``factor`` (e.g. classes -> texts with P templates), optionally capped."""
        lo, opt, hi = self.min * factor, self.opt * factor, self.max * factor
        if cap is not None:
            lo, opt, hi = min(lo, cap), min(opt, cap), min(hi, cap)
        return AxisRange(lo, opt, hi)

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


@dataclass(frozen=True)
class InputProfile:
    name: str
    min: Shape
    opt: Shape
    max: Shape

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def input_profiles(spec: GraphSpec, ranges: dict[str, AxisRange]) -> list[InputProfile]:
    """min/opt/max shapes for every input of ``spec``; a named axis without a range is an error."""
    out = []
    for t in spec.inputs:
        shapes: list[list[int]] = [[], [], []]
        for dim in t.shape:
            if isinstance(dim, str):
                if dim not in ranges:
                    raise ExportError(f"{spec.name}.{t.name}: no range for dynamic axis {dim!r}")
                r = ranges[dim]
                values = (r.min, r.opt, r.max)
            else:
                values = (dim, dim, dim)
            for s, v in zip(shapes, values, strict=True):
                s.append(v)
        out.append(InputProfile(t.name, tuple(shapes[0]), tuple(shapes[1]), tuple(shapes[2])))
    return out


def axis_ranges(batch: AxisRange, classes: AxisRange, texts: AxisRange) -> dict[str, AxisRange]:
    """The contract's dynamic axis names -> ranges."""
    return {BATCH: batch, CLASSES: classes, TEXTS: texts}


def default_texts(classes: AxisRange, templates: int, text_batch: int) -> AxisRange:
    """Texts per text-encoder call: classes x templates, capped at the runtime's batch of texts
    (the runtime embeds a vocabulary in calls of at most ``text_batch`` texts)."""
    return AxisRange(1, min(classes.opt * templates, text_batch), text_batch)
