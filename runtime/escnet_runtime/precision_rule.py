"""The reduced-precision policy every engine follows (OpenVINO bf16, TensorRT fp16, autocast).

Only what decides stays float32, node by node (docs/precision.md):
- the decision operators (``DECISION_OPS``): arg-max / top-k peaks, comparisons (foreground,
  k-means assignment), rounding (the ranked probabilities);
- the small per-pixel score computation that feeds them directly: the class-score map, its
  softmax and log-sum-exp, and the k-means arithmetic between decisions. It is found by walking
  upstream from every decision, and from every graph output in ``DECISION_OUTPUTS`` (the next
  step's prompt scores and their log-sum-exp), through ``SCORE_OPS``. A matrix product or
  convolution is taken in when one operand is a constant of at most ``NARROW_FEATURES`` rows or
  columns (a class-score head C -> 1, the k-means centre means over (x, y) coordinates), and
  the walk goes no further up from it; or when no operand is a constant (the image-text
  correlation that block 0's scores are: features times text embeddings), and the walk goes on.
  Products with wider weights are the bulk, whose rounding the scores tolerate.
Everything else (attention, MLPs, convolutions, normalisations, the encoders) may run in
reduced precision. Whether a reduced-precision build ships is decided by accuracy gates on
trained weights, not by this rule.

``escnet_export.trt.precision`` applies the rule to the ONNX graph (ONNX operator names);
``escnet_runtime.backends.ov_islands`` to OpenVINO's graph (``OPENVINO`` names, which the ONNX
front end gives these operators).
"""

from __future__ import annotations

from escnet_runtime.contract import SCORE_LSE_PART, SCORES_OUT

ISLAND_RULE = "islands-2"  # bump when the rule below changes what it selects (compiled-model cache key)

DECISION_OPS: frozenset[str] = frozenset(
    {"ArgMax", "ArgMin", "TopK", "Round", "Floor", "Ceil", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Equal"}
)
# Graph outputs that the next step graph turns into decisions: the class-score map and its
# log-sum-exp (the prompt softmax's normaliser over every class).
DECISION_OUTPUTS: frozenset[str] = frozenset({SCORES_OUT, SCORE_LSE_PART})
# Operators of the per-pixel score computation: elementwise arithmetic, reductions, the softmax
# family, and data movement (no arithmetic; following it keeps a score a score).
SCORE_OPS: frozenset[str] = frozenset(
    {
        *("Add", "Sub", "Mul", "Div", "Neg", "Abs", "Exp", "Log", "Sqrt", "Pow", "Reciprocal"),
        *("Clip", "Max", "Min", "Where", "Sum", "Mean"),
        *("ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean", "ReduceLogSumExp", "ReduceSumSquare"),
        *("Softmax", "LogSoftmax"),
        *("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Gather", "GatherElements"),
        *("Concat", "Slice", "Split", "Expand", "Tile", "Cast", "Identity"),
    }
)
# Matrix products and convolutions: in the score computation only when narrow (see above).
PRODUCT_OPS: frozenset[str] = frozenset({"MatMul", "Gemm", "Conv"})
NARROW_FEATURES = 4
SHAPE_ONLY: frozenset[str] = frozenset({"Shape", "Size"})

# The same operators as OpenVINO's ONNX front end names them (ArgMax/ArgMin become TopK;
# ReduceLogSumExp, LogSoftmax and Mean decompose into the ops listed).
OPENVINO_DECISION_OPS: dict[str, str] = {
    "ArgMax": "TopK",
    "ArgMin": "TopK",
    "TopK": "TopK",
    "Round": "Round",
    "Floor": "Floor",
    "Ceil": "Ceiling",
    "Greater": "Greater",
    "GreaterOrEqual": "GreaterEqual",
    "Less": "Less",
    "LessOrEqual": "LessEqual",
    "Equal": "Equal",
}
OPENVINO_SCORE_OPS: frozenset[str] = frozenset(
    {
        *("Add", "Subtract", "Multiply", "Divide", "Negative", "Abs", "Exp", "Log", "Sqrt", "Power"),
        *("SquaredDifference", "Clamp", "Maximum", "Minimum", "Select", "Convert"),
        *("ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean", "SoftMax", "LogSoftmax"),
        *("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather", "GatherElements"),
        *("Concat", "StridedSlice", "Slice", "Split", "VariadicSplit", "Broadcast", "Tile"),
    }
)
OPENVINO_PRODUCT_OPS: frozenset[str] = frozenset({"MatMul", "Convolution"})
assert set(OPENVINO_DECISION_OPS) == DECISION_OPS
