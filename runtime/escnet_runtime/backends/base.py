"""The protocol every backend implements, and input checks shared by all of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from escnet_runtime.contract import GraphSpec
from escnet_runtime.errors import BackendError


class Backend(Protocol):
    """Runs the three graphs of one artifacts folder.

    Values are numpy arrays, or (with ``keep_on_device``) backend-owned device values that
    another ``run`` of the same backend takes as inputs without a copy through the host.
    """

    name: str  # e.g. "ort-cpu"
    precision: str  # "fp32" / "fp16" / "bf16": part of the text-embedding cache key

    def graph_sha256(self, graph: str) -> str:
        """sha256 of the file that runs ``graph`` (ONNX graph or engine): the cache's model identity."""
        ...

    def run(self, graph: str, inputs: Mapping[str, Any], keep_on_device: Sequence[str] = ()) -> dict[str, Any]:
        """inputs: tensor name -> array (or device value); returns every output by name."""
        ...

    def put(self, array: np.ndarray) -> Any:
        """Place a constant input (e.g. class embeddings) where the backend reads it."""
        ...

    def to_host(self, value: Any) -> np.ndarray:
        """A value returned by ``run`` as a numpy array."""
        ...

    def release(self, graph: str) -> None:
        """The caller is done with ``graph`` for now (the chunked decoder: a step after its last
        chunk of classes): a backend that keeps per-graph working memory may hand it back."""
        ...

    def close(self) -> None:
        """Free what the backend holds (sessions, compiled models, engines, device memory); idempotent."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


_NUMPY = {"float32": np.float32, "float16": np.float16, "int64": np.int64}


def check_feed(spec: GraphSpec, inputs: Mapping[str, Any]) -> None:
    """Names match the contract; numpy inputs have its rank, dtype and fixed sizes."""
    if set(inputs) != set(spec.input_names):
        raise BackendError(f"{spec.name}: inputs {sorted(inputs)} do not match the contract {spec.input_names}")
    for t in spec.inputs:
        value = inputs[t.name]
        if not isinstance(value, np.ndarray):
            continue  # a device value produced by this backend
        if value.dtype != _NUMPY[t.dtype] or value.ndim != len(t.shape):
            raise BackendError(f"{spec.name}.{t.name}: got {value.dtype} {value.shape}, expected {t.dtype} {t.shape}")
        for got, want in zip(value.shape, t.shape, strict=True):
            if isinstance(want, int) and got != want:
                raise BackendError(f"{spec.name}.{t.name}: got shape {value.shape}, expected {t.shape}")
