"""What ``escnet-export quantize`` prints: progress on stderr, the gate table and the result on
stdout; a usage mistake is one line and exit 2, a failed gate the table, one line and exit 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from escnet_export.errors import EXIT_PARITY_FAILED, EXIT_USER_ERROR, ExportError
from escnet_export.quantize.gates import GateRule
from escnet_export.quantize.options import QuantizeOptions


def _line(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def quantize_command(args: dict[str, Any], out: Console, err: Console) -> None:
    """Run ``escnet-export quantize`` with the CLI's ``args``; raises typer.Exit on failure."""
    from escnet_export.progress import steps
    from escnet_export.quantize.command import GatesFailed, run_quantize

    opts = QuantizeOptions(
        artifacts=Path(args["artifacts"]),
        out=Path(args["out"]),
        calibration=args["calibration"],
        synthetic=args["synthetic"],
        engine=args["engine"],
        calibration_size=args["calibration_size"],
        held_out=args["held_out"],
        smooth_quant=args["smooth_quant"],
        overwrite=args["overwrite"],
        rule=GateRule(miou_tolerance=args["miou_tolerance"], min_agreement=args["min_agreement"]),
    )
    try:
        with steps(err, "escnet-export quantize") as step:
            result = run_quantize(opts, step)
    except GatesFailed as e:
        _line(out, e.table)
        _line(err, f"escnet-export: error: {e}")
        raise typer.Exit(EXIT_PARITY_FAILED) from None
    except ExportError as e:
        _line(err, f"escnet-export: error: {e}")
        raise typer.Exit(EXIT_USER_ERROR) from None
    _line(out, result.table)
    for warning in result.warnings:
        _line(err, f"escnet-export: warning: {warning}")
    graphs = ", ".join(f"{g} {p}" for g, p in result.graphs.items())
    _line(out, f"graphs: {graphs}")
    _line(out, f"gates: {result.verdict}")
    _line(out, f"wrote {opts.out} ({result.bytes / 2**20:.1f} MiB) in {result.seconds:.1f} s")
