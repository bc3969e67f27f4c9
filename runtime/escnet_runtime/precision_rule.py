"""The reduced-precision rule every engine follows (TensorRT fp16, OpenVINO bf16, autocast).

Whatever decides a pseudo-prompt point stays float32: the prompts are arg-max peaks, k-means
assignments and rounded probabilities of the class scores, and rounding anything that feeds them
moves prompt points by whole grid cells. The decisions are these ONNX operators, and the graph
outputs that the next decoder step turns into decisions; values do not flow through shape-only
edges. ``escnet_export.trt.precision`` walks the ONNX graph with these sets, the OpenVINO
backend walks OpenVINO's graph with their OpenVINO names.
"""

from __future__ import annotations

from escnet_runtime.contract import SCORE_LSE_PART, SCORES_OUT

DECISION_OPS: frozenset[str] = frozenset(
    {"ArgMax", "ArgMin", "TopK", "Round", "Floor", "Ceil", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Equal"}
)
SHAPE_ONLY: frozenset[str] = frozenset({"Shape", "Size"})
# Graph outputs that the next step graph turns into decisions: every block's prompt scores and
# their log-sum-exp (the prompt softmax's normaliser), so every node upstream of them stays fp32.
DECISION_OUTPUTS: frozenset[str] = frozenset({SCORES_OUT, SCORE_LSE_PART})

# The same operators as OpenVINO's ONNX front end names them (ArgMax/ArgMin become TopK).
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
OPENVINO_SHAPE_ONLY: frozenset[str] = frozenset({"ShapeOf"})
assert set(OPENVINO_DECISION_OPS) == DECISION_OPS
