"""Static checks of one ONNX graph against what TensorRT's ONNX parser can build.

- every op is on TensorRT's published operator list;
- no control flow (If, Loop, Scan) and no ops whose output shape depends on values (NonZero,
  Unique, Compress, ...);
- no tensor computed from input *values* feeding a shape operand (Reshape's shape, Expand's
  shape, Tile's repeats, OneHot's depth, ...): the OneHot/Tile failures SAM exporters hit.
  Sizes read with Shape are fine (TensorRT resolves them from the profile);
- graph inputs that act as shape tensors (int64 values used as shapes need their own profile);
- reductions whose axes are not constants (TensorRT needs them as initializers);
- opset within the parser's range; protobuf size over 2 GB without external data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from escnet_export.trt.ops import OperatorList, trt_operator_list

# op -> input positions that TensorRT must know as shapes at build time.
SHAPE_OPERANDS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "ConstantOfShape": (0,),
    "OneHot": (1,),
    "Range": (0, 1, 2),
    "Slice": (1, 2, 3, 4),
    "Pad": (1,),
    "Resize": (2, 3),
    "TopK": (1,),
    "Upsample": (1,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
}
CONTROL_FLOW = {"If", "Loop", "Scan"}
DATA_DEPENDENT_SHAPE = {"NonZero", "Unique", "Compress", "NonMaxSuppression", "StringSplit"}
SHAPE_SOURCES = {"Shape", "Size"}  # outputs are sizes, not values
CONSTANT_AXES = {"ReduceL1", "ReduceL2", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "CumSum"}
PROTOBUF_LIMIT = 2**31


@dataclass(frozen=True)
class Finding:
    level: str  # "error" (TensorRT will not build it) or "warning"
    rule: str
    message: str


@dataclass
class GraphCheck:
    name: str
    path: str
    nodes: int
    opset: int
    op_counts: dict[str, int]
    bytes: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]


def check_graph(
    model: onnx.ModelProto, name: str, path: Path | None = None, ops: OperatorList | None = None
) -> GraphCheck:
    ops = ops or trt_operator_list()
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    counts: dict[str, int] = defaultdict(int)
    for n in graph.node:
        counts[n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"] += 1
    size = file_bytes(path) if path is not None else model.ByteSize()
    result = GraphCheck(name, str(path or ""), len(graph.node), opset, dict(sorted(counts.items())), size)
    add = result.findings.append

    if not ops.min_opset <= opset <= ops.max_opset:
        add(
            Finding(
                "warning", "opset", f"opset {opset} outside TensorRT {ops.tensorrt}'s {ops.min_opset}..{ops.max_opset}"
            )
        )
    for n in graph.node:
        support = ops.support(n.op_type, n.domain)
        label = f"{n.op_type} ({n.name or 'unnamed'})"
        if support is None:
            add(Finding("error", "unsupported-op", f"{label}: not on TensorRT's ONNX operator list"))
        elif not support.supported:
            add(Finding("error", "unsupported-op", f"{label}: listed as unsupported by TensorRT's ONNX parser"))
        if n.op_type in CONTROL_FLOW:
            add(Finding("error", "control-flow", f"{label}: control flow; TensorRT builds it only in narrow cases"))
        if n.op_type in DATA_DEPENDENT_SHAPE:
            add(Finding("error", "data-dependent-shape", f"{label}: output shape depends on input values"))
    add_taint_findings(graph, add)
    add_constant_axes_findings(graph, add)
    if size >= PROTOBUF_LIMIT and not uses_external_data(model):
        add(Finding("error", "size", f"{size / 2**30:.2f} GiB in one protobuf: over the 2 GB limit, use external data"))
    return result


def file_bytes(path: Path) -> int:
    """The graph file plus its external-data files."""
    model = onnx.load(str(path), load_external_data=False)
    extra = {
        e.value
        for t in model.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
        for e in t.external_data
        if e.key == "location"
    }
    return path.stat().st_size + sum((path.parent / f).stat().st_size for f in extra if (path.parent / f).exists())


def uses_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def add_taint_findings(graph: onnx.GraphProto, add) -> None:
    """Follow input *values* through the graph; flag those that reach a shape operand."""
    constants = {t.name for t in graph.initializer}
    value_tainted: dict[str, str] = {i.name: i.name for i in graph.input if i.name not in constants}
    for n in graph.node:
        origin = (
            None
            if n.op_type in SHAPE_SOURCES
            else next((value_tainted[i] for i in n.input if i in value_tainted), None)
        )
        for pos in SHAPE_OPERANDS.get(n.op_type, ()):
            if pos < len(n.input) and n.input[pos] in value_tainted:
                src = value_tainted[n.input[pos]]
                is_input = n.input[pos] == src
                add(
                    Finding(
                        "error" if not is_input else "warning",
                        "int64-shape-input" if is_input else "data-dependent-shape",
                        f"{n.op_type} ({n.name or 'unnamed'}) takes its shape operand {pos} from "
                        + (
                            f"graph input {src!r}: a shape-tensor input needs its own TensorRT profile"
                            if is_input
                            else f"the values of input {src!r}: TensorRT cannot build data-dependent shapes"
                        ),
                    )
                )
        if origin is not None:
            for o in n.output:
                value_tainted[o] = origin


def add_constant_axes_findings(graph: onnx.GraphProto, add) -> None:
    constants = {t.name for t in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }
    for n in graph.node:
        if n.op_type in CONSTANT_AXES and len(n.input) > 1 and n.input[1] and n.input[1] not in constants:
            add(Finding("error", "constant-axes", f"{n.op_type} ({n.name}): axes must be an initializer for TensorRT"))
