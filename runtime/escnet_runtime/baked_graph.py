"""A baked graph's file against its manifest: the tensors ``segmenter.onnx`` really has.

A baked manifest can be consistent with itself (4 classes, scores of 4 maps) and still disagree
with the graph it hashes (5 maps): the labels would then index past the class list. ONNX
Runtime reads the graph's inputs and outputs (no optimisation, no weights run), and every name,
dtype and fixed size must be the manifest's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from escnet_runtime.contract import GraphSpec, TensorSpec
from escnet_runtime.manifest import ManifestError, read_hashed

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
}


def _tensor(node: Any) -> TensorSpec:
    """An ONNX Runtime NodeArg -> TensorSpec (a dynamic or unknown size as its name, or "?")."""
    shape = tuple(d if isinstance(d, int) else str(d or "?") for d in node.shape)
    return TensorSpec(node.name, _ORT_DTYPES.get(node.type, node.type), shape)  # type: ignore[arg-type]


def _agrees(got: TensorSpec, want: TensorSpec) -> bool:
    """Same name, dtype and rank; every size the manifest fixes is the graph's (dynamic axes may be named apart)."""
    if got.name != want.name or got.dtype != want.dtype or len(got.shape) != len(want.shape):
        return False
    return all(not isinstance(w, int) or g == w for g, w in zip(got.shape, want.shape, strict=True))


def check_baked_graph(folder: str | Path, graph: GraphSpec, files: dict[str, str]) -> None:
    """ManifestError (one line, naming ``graphs.segmenter``) if the graph file's tensors differ from ``graph``."""
    import onnxruntime as ort

    model = read_hashed(folder, graph.file, files[graph.file])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
        raise ManifestError(f"{folder}: {graph.file}: not a graph ONNX Runtime can load ({type(e).__name__})") from None
    for kind, nodes, wanted in (
        ("inputs", session.get_inputs(), graph.inputs),
        ("outputs", session.get_outputs(), graph.outputs),
    ):
        got = [_tensor(n) for n in nodes]
        if len(got) != len(wanted) or not all(_agrees(g, w) for g, w in zip(got, wanted, strict=False)):
            show = [t.to_dict() for t in got]
            raise ManifestError(
                f"{folder}: graphs.{graph.name}.{kind} differ from {graph.file}'s: the manifest says "
                f"{[t.to_dict() for t in wanted]}, the graph has {show}"
            )
