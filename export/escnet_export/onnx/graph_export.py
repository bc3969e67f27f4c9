"""One graph -> one ONNX file, with the contract's names and dynamic axes.

Exporter choice: ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript). It keeps the
class axis symbolic through the whole decoder (checked by running other T than the traced one),
writes ONNX-standard LayerNormalization instead of decomposed means, and its optimiser folds
constants. The legacy TorchScript tracer records Python ints as constants, which bakes the
traced T into slices and reshapes unless every size is rewritten as a tensor.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from escnet_runtime.contract import GraphSpec
from torch import nn

from escnet_export.errors import ExportError

PROTOBUF_LIMIT = 2**31  # bytes; larger graphs keep their weights in an external-data file
ONNX_DTYPES = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16, "int64": onnx.TensorProto.INT64}
ONNX_DTYPES.update({"uint8": onnx.TensorProto.UINT8, "int32": onnx.TensorProto.INT32})  # the baked graph


@dataclass(frozen=True)
class ExportedGraph:
    """An ONNX file in a staging folder, and what it took to write it."""

    name: str
    path: Path
    files: tuple[str, ...]  # the graph file and, for large graphs, its external-data file
    nodes: int
    bytes: int
    seconds: float
    external_data: bool


def external_data_file(spec: GraphSpec) -> str:
    return f"{spec.file}.data"


def dynamic_shapes(spec: GraphSpec) -> tuple[dict[int, torch.export.Dim], ...]:
    """torch.export dims for each input; axes with the same contract name share one Dim."""
    dims: dict[str, torch.export.Dim] = {}
    out = []
    for t in spec.inputs:
        axes = {}
        for i, name in t.dynamic_axes().items():
            axes[i] = dims.setdefault(name, torch.export.Dim(name, min=1))
        out.append(axes)
    return tuple(out)


def parameter_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.state_dict().values())


def apply_contract(model: onnx.ModelProto, spec: GraphSpec) -> None:
    """Check the graph's inputs and outputs against the contract and name its dynamic axes.

    Raises ExportError when a name, dtype or fixed size differs (e.g. a simplifier that dropped
    an output, or an axis the exporter specialised).
    """
    for kind, actual, expected in (
        ("input", model.graph.input, spec.inputs),
        ("output", model.graph.output, spec.outputs),
    ):
        names = [v.name for v in actual]
        if names != [t.name for t in expected]:
            raise ExportError(f"{spec.file}: {kind}s {names}, contract says {[t.name for t in expected]}")
        for value, t in zip(actual, expected, strict=True):
            tt = value.type.tensor_type
            if tt.elem_type != ONNX_DTYPES[t.dtype]:
                raise ExportError(
                    f"{spec.file}: {kind} {t.name} has ONNX dtype {tt.elem_type}, contract says {t.dtype}"
                )
            dims = tt.shape.dim
            if len(dims) != len(t.shape):
                raise ExportError(f"{spec.file}: {kind} {t.name} has rank {len(dims)}, contract says {len(t.shape)}")
            for dim, want in zip(dims, t.shape, strict=True):
                if isinstance(want, str):
                    if dim.HasField("dim_value"):
                        raise ExportError(
                            f"{spec.file}: {kind} {t.name} axis {want!r} was exported as the fixed size {dim.dim_value}"
                        )
                    dim.dim_param = want
                elif dim.dim_value != want:
                    raise ExportError(f"{spec.file}: {kind} {t.name} has shape {dims}, contract says {t.shape}")


def export_graph(
    module: nn.Module,
    spec: GraphSpec,
    args: tuple[torch.Tensor, ...],
    folder: Path,
    opset: int,
    external_threshold: int = PROTOBUF_LIMIT,
) -> ExportedGraph:
    """Export ``module`` traced on ``args`` to ``folder/spec.file`` (external data when large)."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # torch.export's pytree deprecation notes and the exporter's axis-renaming notes:
            # not actionable here; the contract check below names the axes.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            program = _export(module, spec, args, opset)
    except Exception as e:  # torch.export reports its own error classes
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{spec.name}: torch.onnx.export failed: {first[:300]}") from e
    path = folder / spec.file
    external = parameter_bytes(module) >= external_threshold
    program.save(path, external_data=external)
    return finish_graph(spec, path, external, time.perf_counter() - start)


def _export(module: nn.Module, spec: GraphSpec, args: tuple[torch.Tensor, ...], opset: int) -> torch.onnx.ONNXProgram:
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its step list
        return torch.onnx.export(
            module,
            args,
            None,
            dynamo=True,
            input_names=spec.input_names,
            output_names=spec.output_names,
            opset_version=opset,
            dynamic_shapes=dynamic_shapes(spec),
            optimize=True,
            verbose=False,
        )


def finish_graph(spec: GraphSpec, path: Path, external: bool, seconds: float) -> ExportedGraph:
    """Apply the contract's axis names, run onnx.checker and count nodes."""
    model = onnx.load(str(path), load_external_data=False)
    apply_contract(model, spec)
    onnx.save(model, str(path))  # external tensors keep pointing at the untouched data file
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{spec.file}: onnx.checker: {str(e).strip().splitlines()[0][:300]}") from e
    data = path.parent / external_data_file(spec)
    files = (spec.file, data.name) if external and data.exists() else (spec.file,)
    size = sum((path.parent / f).stat().st_size for f in files)
    return ExportedGraph(spec.name, path, files, len(model.graph.node), size, seconds, external)
