"""``escnet-export quantize``'s options, checked before any work (one line, exit 2, on a bad one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from escnet_runtime.contract import MANIFEST_FILE

from escnet_export.errors import ExportError
from escnet_export.outputs import check_overlap
from escnet_export.quantize.engines import ENGINES, Engine, require_engine
from escnet_export.quantize.gates import GateRule

MAX_CALIBRATION = 1024  # calibration images (each one's graph inputs are kept in memory)
MAX_HELD_OUT = 1000  # held-out scenes the gates run on (each backend segments every one)
DEFAULT_CALIBRATION = 64
DEFAULT_HELD_OUT = 20


@dataclass(frozen=True)
class QuantizeOptions:
    """artifacts: the fp32 folder; exactly one of calibration (a data set folder) and synthetic (a count)."""

    artifacts: Path
    out: Path
    calibration: Path | None = None
    synthetic: int | None = None
    engine: Engine = "openvino"
    calibration_size: int = DEFAULT_CALIBRATION  # images used from --calibration
    held_out: int = DEFAULT_HELD_OUT
    smooth_quant: bool = True
    overwrite: bool = False
    rule: GateRule = field(default_factory=GateRule)

    @property
    def calibration_count(self) -> int:
        return self.synthetic if self.synthetic is not None else self.calibration_size


def _count(value: int, what: str, hi: int) -> None:
    if not 1 <= value <= hi:
        raise ExportError(f"{what} {value}: expected 1 to {hi}")


def validate(opts: QuantizeOptions) -> None:
    """Every value, the folders and the engine's quantiser, before anything is read or written."""
    if (opts.calibration is None) == (opts.synthetic is None):
        raise ExportError("give exactly one of --calibration DIR and --synthetic N")
    if opts.synthetic is not None:
        _count(opts.synthetic, "--synthetic", MAX_CALIBRATION)
    _count(opts.calibration_size, "--calibration-size", MAX_CALIBRATION)
    _count(opts.held_out, "--held-out", MAX_HELD_OUT)
    try:
        opts.rule.check()
    except ValueError as e:
        raise ExportError(str(e)) from None
    if opts.engine not in ENGINES:
        raise ExportError(f"--engine {opts.engine!r}: expected one of {', '.join(ENGINES)}")
    if not (opts.artifacts / MANIFEST_FILE).is_file():
        raise ExportError(
            f"--artifacts {opts.artifacts}: no {MANIFEST_FILE}; expected a folder written by escnet-export onnx"
        )
    if opts.calibration is not None and not opts.calibration.is_dir():
        raise ExportError(f"--calibration {opts.calibration}: no such folder")
    check_overlap(opts.out, {"artifacts folder": opts.artifacts, "calibration folder": opts.calibration})
    if opts.out.exists() and not opts.out.is_dir():
        raise ExportError(f"--out {opts.out}: exists and is not a folder")
    if opts.out.is_dir() and any(opts.out.iterdir()) and not opts.overwrite:
        raise ExportError(f"--out {opts.out}: exists and is not empty; pass --overwrite to replace it")
    require_engine(opts.engine)
