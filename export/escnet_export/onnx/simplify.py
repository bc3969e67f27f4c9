"""Optional graph simplification with onnxslim (pinned in the report; falls back to the
dynamo exporter's own onnxscript optimiser, which already ran, when onnxslim is absent)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import onnx
from escnet_runtime.contract import GraphSpec

from escnet_export.errors import ExportError
from escnet_export.onnx.graph_export import ExportedGraph, finish_graph


@dataclass(frozen=True)
class Simplifier:
    name: str  # "onnxslim" or "none"
    version: str


def available_simplifier() -> Simplifier:
    try:
        import onnxslim
    except ImportError:
        return Simplifier("none", "")
    return Simplifier("onnxslim", getattr(onnxslim, "__version__", "unknown"))


def simplify_graph(graph: ExportedGraph, spec: GraphSpec) -> ExportedGraph:
    """Rewrite ``graph`` in place with onnxslim; graphs with external data are left as they are
    (onnxslim holds the whole model in one protobuf). Returns the re-checked graph."""
    if graph.external_data or available_simplifier().name != "onnxslim":
        return graph
    import onnxslim

    start = time.perf_counter()
    try:
        slim = onnxslim.slim(str(graph.path))
    except Exception as e:
        raise ExportError(f"{spec.file}: onnxslim failed: {str(e).strip()[:300]}") from e
    if not isinstance(slim, onnx.ModelProto):
        raise ExportError(f"{spec.file}: onnxslim returned no model")
    onnx.save(slim, str(graph.path))
    done = finish_graph(spec, Path(graph.path), False, graph.seconds + time.perf_counter() - start)
    return done
