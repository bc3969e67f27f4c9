"""The ONNX opsets ``escnet-export onnx`` writes (no heavy imports: the CLI reads the default)."""

from __future__ import annotations

# Opset 20 has a native Gelu (opset 18 writes x * 0.5 * (1 + erf(x / sqrt 2)), which ONNX Runtime
# does not fuse): ONNX Runtime's CPU provider fuses it with the bias add into BiasGelu, measured 9%
# faster per vit-b16 decoder block step. TensorRT 10's ONNX parser reads opsets 9-20 and Gelu.
DEFAULT_OPSET = 20
MIN_OPSET, MAX_OPSET = 18, 20  # the dynamo exporter's minimum, TensorRT's parser's maximum
