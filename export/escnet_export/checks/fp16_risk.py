"""fp16 risk on the CPU: emulate an fp16 engine in ONNX Runtime and compare it with fp32.

Emulation: every float weight and every float tensor a node produces is rounded to fp16 (a
Cast to float16 and back after each node), so values over 65504 become inf as they would in
an fp16 engine, and every layer sees fp16-precision inputs. Arithmetic inside one node stays
fp32, so this is a lower bound on the drift of a real fp16 engine. Two variants per graph:
every layer in fp16, and fp16 with the layers that ``trt_precision`` pins kept in fp32 (what
``escnet-export trt --fp16`` builds). A third list names the nodes whose fp32 activations
exceed the fp16 range on the sample: those must stay fp32 whatever the rules say.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from escnet_export.checks.parity import argmax_agreement, cosine
from escnet_export.trt.precision import fp32_nodes

FP16_MAX = 65504.0


@dataclass(frozen=True)
class Drift:
    tensor: str
    cosine: float
    max_abs: float
    argmax: float | None
    finite: bool

    def to_dict(self) -> dict[str, object]:
        return vars(self)


@dataclass
class Fp16Risk:
    graph: str
    all_fp16: list[Drift]
    with_fp32_layers: list[Drift]
    pinned_by_rule: dict[str, int]  # op type -> count
    overflow_nodes: list[tuple[str, str, float]] = field(default_factory=list)  # (node, op, max |x|)


def float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of float32 tensors (inputs, outputs and intermediates, by shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name for v in values if v.type.tensor_type.elem_type == TensorProto.FLOAT}


def emulate_fp16(model: onnx.ModelProto, keep_fp32: set[str]) -> onnx.ModelProto:
    """A copy of ``model`` with fp16 rounding after every node not in ``keep_fp32`` (node names)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    floats = float_tensors(m)
    g = m.graph
    kept_inputs = {i for n in g.node if n.name in keep_fp32 for i in n.input}
    used_elsewhere = {i for n in g.node if n.name not in keep_fp32 for i in n.input}
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT and (t.name in used_elsewhere or t.name not in kept_inputs):
            arr = numpy_helper.to_array(t).astype(np.float16).astype(np.float32)
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
    new_nodes: list[onnx.NodeProto] = []
    renames: dict[str, str] = {}
    for inp in g.input:
        if inp.name in floats:
            rounded = f"{inp.name}__fp16in"
            new_nodes += _round(inp.name, rounded)
            renames[inp.name] = rounded
    for n in g.node:
        for k, name in enumerate(n.input):
            if name in renames:
                n.input[k] = renames[name]
        new_nodes.append(n)
        if n.name in keep_fp32:
            continue
        for k, out in enumerate(n.output):
            if out in floats:
                raw = f"{out}__fp32"
                n.output[k] = raw
                new_nodes += _round(raw, out)
    del g.node[:]
    g.node.extend(new_nodes)
    return m


def _round(src: str, dst: str) -> list[onnx.NodeProto]:
    half = f"{dst}__fp16"
    return [
        helper.make_node("Cast", [src], [half], to=TensorProto.FLOAT16, name=f"{half}_cast"),
        helper.make_node("Cast", [half], [dst], to=TensorProto.FLOAT, name=f"{dst}_cast"),
    ]


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every rounding
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def activation_ranges(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[tuple[str, str, float]]:
    """(node, op, max |output|) over every float node output, fp32."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    floats = float_tensors(m)
    producer = {o: n for n in m.graph.node for o in n.output}
    existing = {o.name for o in m.graph.output}
    names = [o for o in producer if o in floats and o not in existing]
    for name in names:
        m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    sess = _session(m)
    wanted = names + [o.name for o in model.graph.output if o.name in floats]
    values = sess.run(wanted, feeds)
    out = []
    for name, v in zip(wanted, values, strict=True):
        n = producer[name]
        finite = np.abs(v[np.isfinite(v)])  # -inf attention masks are -inf in fp32 too: not an overflow
        out.append((n.name, n.op_type, float(finite.max()) if finite.size else 0.0))
    return out


def drift(reference: list[np.ndarray], actual: list[np.ndarray], names: list[str], logits: set[str]) -> list[Drift]:
    rows = []
    for name, r, a in zip(names, reference, actual, strict=True):
        finite = bool(np.isfinite(a).all())
        rows.append(
            Drift(
                tensor=name,
                cosine=cosine(r, np.nan_to_num(a)) if finite else float("nan"),
                max_abs=float(np.abs(r.astype(np.float64) - a).max()) if finite else float("inf"),
                argmax=argmax_agreement(r, np.nan_to_num(a)) if name in logits else None,
                finite=finite,
            )
        )
    return rows


def fp16_risk(
    graph: str, model: onnx.ModelProto, feeds: dict[str, np.ndarray], logits: set[str], ranges: bool = True
) -> tuple[Fp16Risk, list[np.ndarray]]:
    """The risk report for one graph on ``feeds``; also returns the fp32 outputs (to feed the next graph)."""
    names = [o.name for o in model.graph.output]
    reference = _session(model).run(names, feeds)
    pinned = fp32_nodes(model)
    all16 = _session(emulate_fp16(model, set())).run(names, feeds)
    mixed = _session(emulate_fp16(model, {p.name for p in pinned})).run(names, feeds)
    counts: dict[str, int] = {}
    for p in pinned:
        counts[p.op_type] = counts.get(p.op_type, 0) + 1
    overflow = [r for r in activation_ranges(model, feeds) if r[2] > FP16_MAX] if ranges else []
    report = Fp16Risk(
        graph=graph,
        all_fp16=drift(reference, all16, names, logits),
        with_fp32_layers=drift(reference, mixed, names, logits),
        pinned_by_rule=dict(sorted(counts.items())),
        overflow_nodes=overflow,
    )
    return report, reference
