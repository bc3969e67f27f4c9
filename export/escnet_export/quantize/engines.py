"""One graph, fp32 ONNX -> static int8 QDQ ONNX, by the engine's own quantiser.

- ``openvino``: NNCF's ONNX path (``nncf.quantize`` on the ONNX model, ``model_type=TRANSFORMER``,
  SmoothQuant on MatMuls unless turned off, the float32 islands as an ignored scope). The result
  is QDQ ONNX, which OpenVINO's CPU plugin runs in int8 (its low-precision transformations turn
  QuantizeLinear/DequantizeLinear pairs into FakeQuantize) and which ONNX Runtime opens too.
- ``onnxruntime``: ``onnxruntime.quantization.quantize_static``, QDQ format, per-channel int8
  weights, uint8 activations (ONNX Runtime's recommended U8S8 on x86), MinMax calibration, the
  islands in ``nodes_to_exclude``.
Both take their calibration feeds as recorded from the fp32 graphs (``recorder.record_feeds``).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnx

from escnet_export.errors import ExportError, MissingRequirementError

Engine = Literal["openvino", "onnxruntime"]
ENGINES: tuple[str, ...] = ("openvino", "onnxruntime")
SMOOTH_QUANT_ALPHA = 0.95  # NNCF's default SmoothQuant alpha for MatMuls of transformer models
QUANTIZED_OPS = ["Conv", "ConvTranspose", "MatMul", "Gemm"]  # ONNX Runtime: ops whose inputs become int8


@dataclass(frozen=True)
class EngineSettings:
    """How one engine quantises; recorded in the int8 manifest."""

    engine: Engine
    smooth_quant: bool = True  # NNCF only

    def describe(self) -> dict[str, object]:
        if self.engine == "openvino":
            import nncf

            return {
                "tool": f"nncf {nncf.__version__}",
                "model_type": "transformer",
                "smooth_quant_alpha": SMOOTH_QUANT_ALPHA if self.smooth_quant else None,
                "format": "QDQ",
            }
        import onnxruntime

        return {
            "tool": f"onnxruntime.quantization {onnxruntime.__version__}",
            "format": "QDQ",
            "per_channel": True,
            "weights": "int8",
            "activations": "uint8",
            "calibration_method": "MinMax",
            "op_types": list(QUANTIZED_OPS),
        }


def require_engine(engine: str) -> None:
    """ExportError (one line) for an unknown engine or a missing quantiser, before any work."""
    if engine not in ENGINES:
        raise ExportError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine == "openvino":
        try:
            import nncf  # noqa: F401
        except ImportError:
            raise MissingRequirementError(
                "--engine openvino needs NNCF, which is not installed: pip install nncf"
            ) from None


def quantize_graph(
    model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], ignored: Sequence[str], settings: EngineSettings
) -> onnx.ModelProto:
    """``model`` (fp32) -> its int8 QDQ form, calibrated on ``feeds``, nodes ``ignored`` left float32."""
    if not feeds:
        raise ExportError("no calibration inputs were recorded for this graph")
    try:
        with _quiet():
            if settings.engine == "openvino":
                return _nncf(model, feeds, ignored, settings.smooth_quant)
            return _onnxruntime(model, feeds, ignored)
    except ExportError:
        raise
    except Exception as e:  # the quantisers raise many types; the user gets one line
        raise ExportError(f"{settings.engine} quantisation failed ({type(e).__name__}: {_first_line(e)})") from None


def _nncf(
    model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], ignored: Sequence[str], smooth: bool
) -> onnx.ModelProto:
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    alphas = AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA if smooth else -1)
    return nncf.quantize(
        model,
        nncf.Dataset(list(feeds)),
        model_type=nncf.ModelType.TRANSFORMER,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(feeds),
        ignored_scope=nncf.IgnoredScope(names=list(ignored), validate=False),
        advanced_parameters=AdvancedQuantizationParameters(smooth_quant_alphas=alphas),
    )


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader protocol over recorded feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _onnxruntime(
    model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], ignored: Sequence[str]
) -> onnx.ModelProto:
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="escnet-quantize-ort-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        quantize_static(
            str(src),
            str(dst),
            _Reader(feeds),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(ignored),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
        return onnx.load(dst)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantisers print progress bars and INFO logs; the command prints its own lines."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
