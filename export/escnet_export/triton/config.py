"""Triton model configurations as ``model_config_pb2.ModelConfig`` messages (tritonclient's own
protobuf classes), written and read as ``config.pbtxt`` through ``google.protobuf.text_format``.

Nothing here formats config text by hand: every config is a message, serialised by protobuf.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escnet_runtime.contract import GraphSpec, TensorSpec
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

CONFIG_FILE = "config.pbtxt"
PIPELINE_MODEL = "escnet"
# The pipeline model's tensors (clients use these names).
IMAGE_INPUT, CLASSES_INPUT = "image", "classes"
LABELS_OUTPUT, NAMES_OUTPUT = "labels", "class_names"

# tritonserver 2.51 (24.10) aborts the whole server (std::bad_alloc while parsing the JSON) on one
# small HTTP request whose JSON tensor declares a huge shape; no model config or server option of
# that version bounds it. Serving HTTP inference only to clients that send this header closes that
# path for everyone else (they use gRPC, which refuses such shapes); docs/serving.md says more.
RESTRICTED_HEADER = "escnet-infer-key"


def restricted_http_option(key: str) -> str:
    """The tritonserver option that serves HTTP inference only to requests with ``RESTRICTED_HEADER: key``."""
    return f"--http-restricted-api=inference:{RESTRICTED_HEADER}={key}"


_TYPES = {"float32": mc.TYPE_FP32, "float16": mc.TYPE_FP16, "int64": mc.TYPE_INT64}


@dataclass(frozen=True)
class PipelineSettings:
    """What the ``escnet`` Python model is configured with (see export/triton_model.py)."""

    backend: str  # an escnet_runtime backend name, or "bls" (graphs served by Triton models)
    manifest_sha256: str  # of artifacts/manifest.json, checked when the model loads
    max_batch: int
    instances: int
    gpu: bool
    vocabulary: tuple[str, ...]
    max_classes: int
    class_chunk: int | None
    bls_models: dict[str, str]  # graph -> Triton model name (BLS only)


def _param(cfg: mc.ModelConfig, key: str, value: Any) -> None:
    cfg.parameters[key].string_value = value if isinstance(value, str) else json.dumps(value)


def _instances(cfg: mc.ModelConfig, count: int, gpu: bool) -> None:
    group = cfg.instance_group.add()
    group.count = count
    group.kind = mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_CPU


def pipeline_config(s: PipelineSettings) -> mc.ModelConfig:
    """The ``escnet`` model: image UINT8 [-1, -1, 3] + classes UINT8 [-1] (UTF-8, a name per line;
    optional) -> labels INT32 [-1, -1] + class_names UINT8 [-1], with the batch axis in front."""
    cfg = mc.ModelConfig(name=PIPELINE_MODEL, backend="python", max_batch_size=s.max_batch)
    cfg.input.add(name=IMAGE_INPUT, data_type=mc.TYPE_UINT8, dims=[-1, -1, 3])
    cfg.input.add(name=CLASSES_INPUT, data_type=mc.TYPE_UINT8, dims=[-1], optional=True)
    cfg.output.add(name=LABELS_OUTPUT, data_type=mc.TYPE_INT32, dims=[-1, -1])
    cfg.output.add(name=NAMES_OUTPUT, data_type=mc.TYPE_UINT8, dims=[-1])
    if s.max_batch > 0:
        cfg.dynamic_batching.max_queue_delay_microseconds = 2000
    _instances(cfg, s.instances, s.gpu)
    _param(cfg, "backend", s.backend)
    _param(cfg, "manifest_sha256", s.manifest_sha256)
    _param(cfg, "vocabulary", list(s.vocabulary))
    _param(cfg, "max_classes", str(s.max_classes))
    _param(cfg, "class_chunk", str(s.class_chunk or 0))
    if s.bls_models:
        _param(cfg, "bls_models", s.bls_models)
    return cfg


def _tensor(t: TensorSpec, dims: Sequence[int] | None = None) -> dict[str, Any]:
    shape = dims if dims is not None else [d if isinstance(d, int) else -1 for d in t.shape]
    return {"name": t.name, "data_type": _TYPES[t.dtype], "dims": list(shape)}


def onnx_graph_config(name: str, spec: GraphSpec, instances: int) -> mc.ModelConfig:
    """One graph as an ``onnxruntime_onnx`` model: the contract's tensors, dynamic axes as -1."""
    cfg = mc.ModelConfig(name=name, platform="onnxruntime_onnx", backend="onnxruntime", max_batch_size=0)
    cfg.default_model_filename = "model.onnx"
    for t in spec.inputs:
        cfg.input.add(**_tensor(t))
    for t in spec.outputs:
        cfg.output.add(**_tensor(t))
    _instances(cfg, instances, gpu=True)
    return cfg


def profile_dims(profile: Sequence[dict[str, Any]], tensor: str) -> list[int] | None:
    """An input's dims from a TensorRT profile (build.json): fixed where min == max, else -1."""
    for p in profile:
        if p["input"] == tensor:
            return [lo if lo == hi else -1 for lo, hi in zip(p["min"], p["max"], strict=True)]
    return None


def trt_graph_config(name: str, spec: GraphSpec, profile: Sequence[dict[str, Any]], instances: int) -> mc.ModelConfig:
    """One graph as a ``tensorrt_plan`` model, inputs shaped as its engine's profile allows."""
    cfg = mc.ModelConfig(name=name, platform="tensorrt_plan", backend="tensorrt", max_batch_size=0)
    cfg.default_model_filename = "model.plan"
    for t in spec.inputs:
        cfg.input.add(**_tensor(t, profile_dims(profile, t.name)))
    for t in spec.outputs:
        cfg.output.add(**_tensor(t))
    _instances(cfg, instances, gpu=True)
    cfg.instance_group[0].profile.append("0")
    return cfg


def config_text(cfg: mc.ModelConfig) -> str:
    return text_format.MessageToString(cfg)


def read_config(path: str | Path) -> mc.ModelConfig:
    """Parse a ``config.pbtxt`` back into a ModelConfig (raises text_format.ParseError if malformed)."""
    return text_format.Parse(Path(path).read_text(encoding="utf-8"), mc.ModelConfig())


def parameters(cfg: mc.ModelConfig) -> dict[str, str]:
    return {k: v.string_value for k, v in cfg.parameters.items()}
