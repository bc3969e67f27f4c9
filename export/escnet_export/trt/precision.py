"""Which layers of an fp16 engine stay fp32: rules over the ONNX graph, applied to TensorRT layers.

fp16 overflows (max 65504) or loses too much in sums of squares and normalisations: LayerNorm,
Softmax, Pow -> ReduceMean (decomposed norms), GroupNorm (InstanceNormalization after the
exporter's reshape), and the cost volume's L2 normalisation (ReduceL2 -> Clip -> Expand -> Div).
Besides these fp16 range rules, the f32 islands of ``escnet_runtime.precision_rule`` (the
policy every engine shares): the decision operators and the per-pixel score computation that
feeds them, node by node; every other node, the bulk, may run in fp16.
The rules pick ONNX nodes; ``layers_to_pin`` maps them to TensorRT layers (by layer name, which
the ONNX parser derives from the node name, or by output tensor name, which it keeps) and
also pins TensorRT layers of those kinds directly, so a renamed layer is still covered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import onnx
from escnet_runtime.precision_rule import (
    DECISION_OPS,
    DECISION_OUTPUTS,
    NARROW_FEATURES,
    PRODUCT_OPS,
    SCORE_OPS,
    SHAPE_ONLY,
)

ALWAYS_FP32 = {
    "LayerNormalization": "LayerNorm: mean and variance overflow in fp16",
    "GroupNormalization": "GroupNorm: variance overflows in fp16",
    "InstanceNormalization": "GroupNorm/InstanceNorm: variance overflows in fp16",
    "Softmax": "Softmax: exp of large logits overflows in fp16",
    "LogSoftmax": "LogSoftmax: exp of large logits overflows in fp16",
    "Pow": "Pow: squares overflow in fp16",
    "ReduceMean": "ReduceMean: long sums (of squares) overflow or lose precision in fp16",
    "ReduceSumSquare": "ReduceSumSquare: sum of squares overflows in fp16",
    "ReduceL2": "ReduceL2: cost-volume normalisation (sum of squares)",
}
# Discrete decisions (escnet_runtime.precision_rule, shared with OpenVINO's bf16): the pseudo prompts
# are arg-max peaks, k-means assignments and rounded probabilities of the class scores. They and
# the per-pixel score computation feeding them directly stay fp32 (their islands); the bulk
# upstream of the scores does not.
# Ops that finish a normalisation started by a pinned node (x / sqrt(mean(x^2) + eps), x / max(|x|, eps)).
NORMALISATION_TAIL = {"Add", "Sqrt", "Div", "Reciprocal", "Clip", "Max", "Expand", "Mul"}
TAIL_HOPS = 3
TAIL_ROOTS = {"ReduceMean", "ReduceL2", "ReduceSumSquare"}


@dataclass(frozen=True)
class PinnedNode:
    name: str
    op_type: str
    outputs: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.name, "op": self.op_type, "reason": self.reason}


def fp32_nodes(model: onnx.ModelProto) -> list[PinnedNode]:
    """The nodes of ``model`` that an fp16 engine must run in fp32, in graph order."""
    nodes = list(model.graph.node)
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in nodes:
        for i in n.input:
            consumers[i].append(n)
    reasons: dict[str, str] = {}
    for n in nodes:
        if n.op_type in ALWAYS_FP32:
            reasons.setdefault(n.name, ALWAYS_FP32[n.op_type])
        if n.op_type in TAIL_ROOTS:
            for tail in _tail(n, consumers):
                reasons.setdefault(tail.name, f"{tail.op_type} finishing the normalisation of {n.name} ({n.op_type})")
    for n, decision in _island_nodes(nodes, _constants(model), [o.name for o in model.graph.output]):
        reasons.setdefault(n.name, f"feeds {decision}: fp16 rounding would move the pseudo prompts")
    return [PinnedNode(n.name, n.op_type, tuple(n.output), reasons[n.name]) for n in nodes if n.name in reasons]


def _constants(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Names of the constant tensors (initializers, Constant nodes) -> their shapes."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    shapes[n.output[0]] = tuple(a.t.dims)
    return shapes


def _product_kind(node: onnx.NodeProto, constants: dict[str, tuple[int, ...]]) -> str:
    """ "correlation" (no constant operand), "head" (a narrow constant operand) or "bulk"."""
    weights = [constants[i] for i in node.input[:2] if i in constants]
    if not weights:
        return "correlation"
    if any(len(w) >= 2 and min(w[-2:]) <= NARROW_FEATURES for w in weights):
        return "head"
    return "bulk"


def _island_nodes(
    nodes: list[onnx.NodeProto], constants: dict[str, tuple[int, ...]], outputs: Iterable[str]
) -> Iterable[tuple[onnx.NodeProto, str]]:
    """(node, the decision it feeds) for every node of the f32 islands: the DECISION_OPS nodes and
    what feeds them (or a DECISION_OUTPUTS graph output) through SCORE_OPS, score heads and
    correlations; the walk stops at Shape/Size (no values flow through) and at the bulk."""
    producer = {o: n for n in nodes for o in n.output}
    roots = [(n, f"the discrete decision {n.name} ({n.op_type})") for n in nodes if n.op_type in DECISION_OPS]
    seen: set[str] = set()
    for n, decision in roots:
        seen.add(n.name)
        yield n, decision
    starts = [(list(n.input), d) for n, d in roots]
    starts += [([o], f"the output {o} (prompt decisions in the next step)") for o in outputs if o in DECISION_OUTPUTS]
    for inputs, decision in starts:
        stack = list(inputs)
        while stack:
            parent = producer.get(stack.pop())
            if parent is None or parent.name in seen or parent.op_type in SHAPE_ONLY:
                continue
            kind = _product_kind(parent, constants) if parent.op_type in PRODUCT_OPS else None
            if parent.op_type not in SCORE_OPS and parent.op_type not in DECISION_OPS and kind in (None, "bulk"):
                continue
            seen.add(parent.name)
            if kind != "head":  # a score head's input is the bulk
                stack.extend(parent.input)
            yield parent, decision


def _tail(root: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]]) -> Iterable[onnx.NodeProto]:
    frontier, seen = [root], {root.name}
    for _ in range(TAIL_HOPS):
        nxt = []
        for node in frontier:
            for out in node.output:
                for c in consumers.get(out, []):
                    if c.op_type in NORMALISATION_TAIL and c.name not in seen:
                        seen.add(c.name)
                        nxt.append(c)
                        yield c
        frontier = nxt


def summarise(pinned: list[PinnedNode]) -> dict[str, int]:
    """op type -> count, for reports."""
    counts: dict[str, int] = defaultdict(int)
    for p in pinned:
        counts[p.op_type] += 1
    return dict(sorted(counts.items()))


def trt_pinned_layer_kinds(trt: Any) -> set[Any]:
    """TensorRT layer types always kept in fp32 (normalisation, softmax, reductions)."""
    return {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX, trt.LayerType.REDUCE}


def layers_to_pin(trt: Any, network: Any, pinned: list[PinnedNode]) -> list[tuple[int, str]]:
    """(layer index, why) for every layer of ``network`` that must run in fp32."""
    names = {p.name: p for p in pinned}
    outputs = {o: p for p in pinned for o in p.outputs}
    kinds = trt_pinned_layer_kinds(trt)
    chosen = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        tensors = [layer.get_output(k) for k in range(layer.num_outputs)]
        if not tensors or any(t.dtype not in (trt.float32, trt.float16) for t in tensors):
            continue  # shape arithmetic and integer layers have no fp16 form to avoid
        outs = [t.name for t in tensors]
        hit = names.get(layer.name) or next((outputs[o] for o in outs if o in outputs), None)
        if hit is not None:
            chosen.append((i, f"ONNX node {hit.name}: {hit.reason}"))
        elif layer.type in kinds:
            chosen.append((i, f"TensorRT {layer.type.name} layer"))
        elif layer.type == trt.LayerType.ELEMENTWISE:
            layer.__class__ = trt.IElementWiseLayer
            if layer.op == trt.ElementWiseOperation.POW:
                chosen.append((i, "TensorRT elementwise POW layer"))
    return chosen


def pin_layers(trt: Any, network: Any, chosen: list[tuple[int, str]]) -> list[dict[str, str]]:
    """Set precision and float output types of the chosen layers to fp32; returns the override record."""
    record = []
    for i, why in chosen:
        layer = network.get_layer(i)
        layer.precision = trt.float32
        for k in range(layer.num_outputs):
            layer.set_output_type(k, trt.float32)
        record.append({"layer": layer.name, "type": layer.type.name, "precision": "fp32", "why": why})
    return record
