"""Printing the ``check`` report with rich."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from escnet_export.checks.fp16_risk import FP16_MAX
from escnet_export.checks.preflight import CheckReport

SHOW = 12  # findings listed per graph


def print_report(console: Console, report: CheckReport) -> None:
    console.print(f"TensorRT preflight of {report.folder} (operator list: {report.source})")
    table = Table(title="TensorRT readiness")
    for col in ("graph", "nodes", "opset", "size", "errors", "warnings"):
        table.add_column(col)
    for g in report.graphs:
        warnings = [f for f in g.findings if f.level == "warning"]
        table.add_row(
            g.name, str(g.nodes), str(g.opset), f"{g.bytes / 2**20:.1f} MiB", str(len(g.errors)), str(len(warnings))
        )
    console.print(table)
    for g in report.graphs:
        for f in g.findings[:SHOW]:
            console.print(f"  {g.name}: {f.level}: [{f.rule}] {f.message}", markup=False)
        if len(g.findings) > SHOW:
            console.print(f"  {g.name}: ... {len(g.findings) - SHOW} more")
    for note in report.notes:
        console.print(f"note: {note}")
    if report.fp16:
        print_fp16(console, report)
    console.print("ready for TensorRT: " + ("yes" if report.ready else "NO"))


def print_fp16(console: Console, report: CheckReport) -> None:
    table = Table(title="fp16 risk (ONNX Runtime CPU, fp16-rounded activations and weights, vs fp32)")
    for col in ("graph", "tensor", "variant", "cosine", "max-abs", "arg-max", "finite"):
        table.add_column(col)
    for r in report.fp16:
        for variant, rows in (("all fp16", r.all_fp16), ("fp16 + fp32 layers", r.with_fp32_layers)):
            for d in rows:
                table.add_row(
                    r.graph,
                    d.tensor,
                    variant,
                    f"{d.cosine:.6f}",
                    f"{d.max_abs:.3e}",
                    "-" if d.argmax is None else f"{d.argmax:.3%}",
                    "yes" if d.finite else "[red]NO (overflow)[/]",
                )
    console.print(table)
    for r in report.fp16:
        pinned = ", ".join(f"{op} x{n}" for op, n in r.pinned_by_rule.items()) or "none"
        console.print(f"{r.graph}: layers kept fp32 by rule: {pinned}", markup=False)
        if r.overflow_nodes:
            worst = sorted(r.overflow_nodes, key=lambda x: -x[2])[:SHOW]
            listed = ", ".join(f"{n} ({op}, max {v:.3g})" for n, op, v in worst)
            console.print(f"{r.graph}: activations over fp16's {FP16_MAX:.0f} (must stay fp32): {listed}", markup=False)
        else:
            console.print(f"{r.graph}: no activation exceeds fp16's range on the sample", markup=False)


def report_dict(report: CheckReport) -> dict[str, Any]:
    """The report as plain JSON values (``escnet-export check --json``); non-finite numbers become null."""
    data = dataclasses.asdict(report)
    data["folder"] = str(report.folder)
    data["ready"] = report.ready
    for g, check in zip(data["graphs"], report.graphs, strict=True):
        g["errors"], g["warnings"] = len(check.errors), len(check.findings) - len(check.errors)
    return _finite(data)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
