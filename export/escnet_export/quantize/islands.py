"""The float32 islands of an int8 graph: the nodes quantisation must leave alone.

The precision rule (``../shared/design/deployment.md``, "Precision"; the operator sets in
``escnet_runtime.precision_rule``): the decision operators (arg-max, top-k, comparisons,
rounding, k-means assignment) stay float32, and so does the small per-pixel score computation
that feeds them directly: the class-score map, its softmax and log-sum-exp. Here that
computation is found on the ONNX graph by walking back from each decision operator's inputs
and from each graph output that the next decoder step turns into decisions
(``DECISION_OUTPUTS``: the prompt scores and their log-sum-exp part), through every node, up to
and including the first weighted operator (Conv / MatMul / Gemm: the projection that makes the
score map) on each path. Everything upstream of that projection may run in int8.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import onnx
from escnet_runtime.precision_rule import DECISION_OPS, DECISION_OUTPUTS, SHAPE_ONLY

# The operators whose inputs int8 quantises (weights and activations): the walk stops after one.
WEIGHTED_OPS: frozenset[str] = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum"})
# Always float32, wherever they are: the normalisers of a score map.
ALWAYS_F32_OPS: frozenset[str] = frozenset({"Softmax", "LogSoftmax", "ReduceLogSumExp"})


@dataclass(frozen=True)
class Island:
    """One node kept in float32 and the decision it serves."""

    node: str
    op_type: str
    reason: str


def f32_islands(model: onnx.ModelProto) -> list[Island]:
    """The nodes of ``model`` that stay float32 under int8, in graph order."""
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    reasons: dict[str, str] = {}
    for n in nodes:
        if n.op_type in DECISION_OPS:
            reasons.setdefault(n.name, f"decision operator {n.op_type}")
        elif n.op_type in ALWAYS_F32_OPS:
            reasons.setdefault(n.name, f"{n.op_type}: normalises a score map")
    roots = [(list(n.input), f"feeds the decision {n.name} ({n.op_type})") for n in nodes if n.op_type in DECISION_OPS]
    outputs = [o.name for o in model.graph.output if o.name in DECISION_OUTPUTS]
    roots += [([o], f"computes {o} (prompt decisions of the next step)") for o in outputs]
    for node, why in _score_path(producer, roots):
        reasons.setdefault(node.name, why)
    return [Island(n.name, n.op_type, reasons[n.name]) for n in nodes if n.name in reasons]


def _score_path(
    producer: dict[str, onnx.NodeProto], roots: list[tuple[list[str], str]]
) -> Iterable[tuple[onnx.NodeProto, str]]:
    """Nodes upstream of each root up to and including the first weighted operator on each path;
    shape-only edges carry no values and are not followed."""
    seen: set[str] = set()
    for inputs, why in roots:
        stack = list(inputs)
        while stack:
            parent = producer.get(stack.pop())
            if parent is None or parent.name in seen or parent.op_type in SHAPE_ONLY:
                continue
            seen.add(parent.name)
            yield parent, why
            if parent.op_type not in WEIGHTED_OPS:
                stack.extend(parent.input)


def unnamed_nodes(model: onnx.ModelProto) -> int:
    """How many nodes have no name (an ignored scope can only name named nodes)."""
    return sum(1 for n in model.graph.node if not n.name)
