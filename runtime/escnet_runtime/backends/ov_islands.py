"""The f32 islands of an OpenVINO model under a bf16 hint, found and marked node by node.

The islands are ``precision_rule``'s: the decision operators and the per-pixel score
computation feeding them. Each island node gets the runtime attribute ``precise_0`` in its
``rt_info``, the key ``ov::disable_fp16_compression`` sets. (The older key
``disable_fp16_compression_0`` is ignored: nodes so marked ran in bf16.)

Set from Python, the key is a plain string entry that OpenVINO 2026.4's CPU plugin does not act
on; OpenVINO's IR serializer turns it into the real attribute (``DisablePrecisionConversion``,
read back from IR as such). So a marked model goes once through IR, in memory apart from a
private temporary folder, and the model read back is the one compiled: under
``INFERENCE_PRECISION_HINT=bf16`` the plugin then keeps the marked nodes in f32. Nodes that the
plugin itself makes while compiling (its Subtract / Divide decompositions, the transposes and
FullyConnected layers it makes of a MatMul) do not inherit the attribute: ``node_precisions``
on the compiled model says which island nodes still run in bf16 (docs/precision.md).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from escnet_runtime.precision_rule import (
    DECISION_OUTPUTS,
    NARROW_FEATURES,
    OPENVINO_DECISION_OPS,
    OPENVINO_PRODUCT_OPS,
    OPENVINO_SCORE_OPS,
)

PRECISE = "precise_0"  # rt_info key of ov::disable_fp16_compression (OpenVINO >= 2024)
_DECISIONS = frozenset(OPENVINO_DECISION_OPS.values())


def _constant_shapes(node: Any) -> list[Any]:
    """Partial shapes of ``node``'s constant operands (a weight, possibly behind a Convert)."""
    shapes = []
    for value in node.input_values():
        source = value.get_node()
        if source.get_type_name() == "Convert":  # a weight stored in another precision
            source = source.input_value(0).get_node()
        if source.get_type_name() == "Constant":
            shapes.append(value.get_partial_shape())
    return shapes


def _narrow(shape: Any) -> bool:
    """At most NARROW_FEATURES rows or columns (a matrix's last two axes)."""
    if not shape.rank.is_static or shape.rank.get_length() < 2:
        return False
    dims = [d.get_length() for d in shape[-2:] if d.is_static]
    return bool(dims) and min(dims) <= NARROW_FEATURES


def _is_real(node: Any) -> bool:
    return any(node.get_input_element_type(i).is_real() for i in range(node.get_input_size()))


def f32_islands(model: Any) -> list[Any]:
    """The nodes of ``model`` (an ``openvino.Model``) that stay f32, in graph order."""
    ops = model.get_ordered_ops()
    stack = []
    island: set[str] = set()
    for op in ops:
        if op.get_type_name() in _DECISIONS and _is_real(op):
            island.add(op.get_friendly_name())
            stack.extend(v.get_node() for v in op.input_values())
    for result in model.get_results():
        if result.input_value(0).get_names() & DECISION_OUTPUTS:
            stack.append(result.input_value(0).get_node())
    while stack:
        node = stack.pop()
        name, kind = node.get_friendly_name(), node.get_type_name()
        if name in island:
            continue
        if kind in OPENVINO_SCORE_OPS or kind in _DECISIONS:
            island.add(name)
            stack.extend(v.get_node() for v in node.input_values())
        elif kind in OPENVINO_PRODUCT_OPS:
            weights = _constant_shapes(node)
            if not weights:  # a correlation of two inputs (features x text): a score, walk on
                island.add(name)
                stack.extend(v.get_node() for v in node.input_values())
            elif any(_narrow(w) for w in weights):
                island.add(name)  # a score head: in the island, and the walk stops (its input is the bulk)
    return [op for op in ops if op.get_friendly_name() in island]


def mark_f32_islands(model: Any) -> list[str]:
    """Mark ``model``'s f32 islands with ``precise_0``; returns their names in graph order."""
    nodes = f32_islands(model)
    for i, node in enumerate(nodes):
        node.get_rt_info()[PRECISE] = ""
        kind = node.get_type_name()
        if re.fullmatch(rf"{kind}_\d+", node.get_friendly_name()):  # named from a counter of the process
            node.set_friendly_name(f"{kind}_island_{i}")  # the same on every read, cached or not
    return [node.get_friendly_name() for node in nodes]


def through_ir(ov: Any, core: Any, model: Any) -> Any:
    """``model`` written to IR and read back: the island marks become the attribute the CPU
    plugin acts on. The IR goes through a private temporary folder, removed at once."""
    with tempfile.TemporaryDirectory(prefix="escnet-ov-") as folder:  # 0700
        xml, weights = Path(folder) / "model.xml", Path(folder) / "model.bin"
        ov.serialize(model, str(xml), str(weights))
        text, data = xml.read_bytes(), np.fromfile(weights, dtype=np.uint8)
    return core.read_model(text, ov.Tensor(data))
