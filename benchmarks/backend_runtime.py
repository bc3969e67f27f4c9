"""escnet_runtime backends (ONNX Runtime CPU / CUDA / TensorRT EP, TensorRT engines). Placeholder
until the runtime's Segmenter lands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .backend import BackendSpec, BackendUnavailable, BenchBackend

RUNTIME_SPECS: dict[str, BackendSpec] = {
    s.name: s
    for s in (
        BackendSpec("ort-cpu", "runtime", "cpu", "fp32", "escnet_runtime, ONNX Runtime CPU provider"),
        BackendSpec("ort-cuda", "runtime", "cuda", "fp32", "escnet_runtime, ONNX Runtime CUDA provider"),
        BackendSpec("ort-trt", "runtime", "cuda", "fp32", "escnet_runtime, ONNX Runtime TensorRT provider"),
        BackendSpec("trt", "runtime", "cuda", "fp32", "escnet_runtime, TensorRT engines"),
    )
}


class RuntimeBackend(BenchBackend):
    def __init__(self, name: str, artifacts: Path) -> None:
        self.spec = RUNTIME_SPECS[name]
        raise BackendUnavailable("escnet_runtime.Segmenter is not available yet")

    def graph_fn(self, graph: str, inputs: dict[str, np.ndarray]) -> Callable[[], Any]:
        raise NotImplementedError

    def graph_outputs(self, graph: str, raw: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def vocabulary_fn(self, names: list[str], cache: Literal["cold", "warm"]) -> Callable[[], Any] | None:
        raise NotImplementedError

    def set_vocabulary(self, names: list[str]) -> None:
        raise NotImplementedError

    def segment_fn(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        raise NotImplementedError
