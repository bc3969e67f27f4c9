"""TensorRT's ONNX parser operator list (``trt_onnx_operators.json``, from onnx-tensorrt's
published docs/operators.md; its source and commit are recorded in the file)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

OPS_FILE = Path(__file__).with_name("onnx_operators.json")


@dataclass(frozen=True)
class OperatorSupport:
    supported: bool
    types: tuple[str, ...]
    restrictions: str


@dataclass(frozen=True)
class OperatorList:
    source: str
    tensorrt: str
    min_opset: int
    max_opset: int
    operators: dict[str, OperatorSupport]

    def support(self, op_type: str, domain: str = "") -> OperatorSupport | None:
        """None for an op the list does not name (or any op outside the default ONNX domain)."""
        if domain not in ("", "ai.onnx"):
            return None
        return self.operators.get(op_type)


@cache
def trt_operator_list() -> OperatorList:
    data = json.loads(OPS_FILE.read_text())
    ops = {
        name: OperatorSupport(bool(d["supported"]), tuple(d["types"]), d["restrictions"])
        for name, d in data["operators"].items()
    }
    return OperatorList(data["source"], data["tensorrt"], int(data["min_opset"]), int(data["max_opset"]), ops)
