"""The float32 islands of an int8 graph: the nodes quantisation must leave alone.

The precision rule (``escnet_runtime.precision_rule``, docs/precision.md) for every engine: the
decision operators (arg-max, top-k, comparisons, rounding, k-means assignment) stay float32, and
so does the small per-pixel score computation that feeds them directly (the class-score map,
its softmax and log-sum-exp, the k-means arithmetic). The ONNX walk that finds them is the one
TensorRT's fp16 engines use (``escnet_export.trt.precision``), so int8 keeps exactly the islands
that bf16 and fp16 keep. The fp16-only pins (LayerNorm, Pow, ...) are no concern of int8: its
arithmetic between quantised products stays float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from escnet_export.trt.precision import _constants, _island_nodes


@dataclass(frozen=True)
class Island:
    """One node kept in float32 and the decision it serves."""

    node: str
    op_type: str
    reason: str


def f32_islands(model: onnx.ModelProto) -> list[Island]:
    """The nodes of ``model`` that stay float32 under int8, in graph order."""
    nodes = list(model.graph.node)
    outputs = [o.name for o in model.graph.output]
    reasons: dict[str, str] = {}
    for node, decision in _island_nodes(nodes, _constants(model), outputs):
        reasons.setdefault(node.name, f"feeds {decision}")
    return [Island(n.name, n.op_type, reasons[n.name]) for n in nodes if n.name in reasons]


def unnamed_nodes(model: onnx.ModelProto) -> int:
    """How many nodes have no name (an ignored scope can only name named nodes)."""
    return sum(1 for n in model.graph.node if not n.name)
