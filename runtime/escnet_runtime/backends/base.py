"""The base class of every backend: input checks and the context protocol, written once.

A backend subclasses :class:`Backend` and implements only what differs: ``run_impl`` (one graph
on already-checked inputs) and ``close``; it overrides ``graph_sha256``, ``put``, ``to_host`` and
``release`` where its values or files are not the plain ONNX graphs and numpy arrays.

Thread safety (every backend): ``run``, ``put``, ``to_host`` and ``release`` may be called from
several threads at once, on the same or different graphs, and each call returns the outputs of
its own inputs. ``close`` must not race with calls still running.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from escnet_runtime.contract import GraphSpec
from escnet_runtime.errors import BackendError
from escnet_runtime.manifest import Manifest


class Backend(ABC):
    """Runs the three graphs of one artifacts folder.

    Values are numpy arrays, or (with ``keep_on_device``) backend-owned device values that
    another ``run`` of the same backend takes as inputs without a copy through the host.
    """

    name: str  # e.g. "ort-cpu"
    precision: str  # "fp32" / "fp16" / "bf16": part of the text-embedding cache key
    manifest: Manifest

    def __init__(self, name: str, precision: str, manifest: Manifest) -> None:
        self.name = name
        self.precision = precision
        self.manifest = manifest

    def graph_spec(self, graph: str) -> GraphSpec:
        """The contract of ``graph``; an unknown name is a BackendError."""
        spec = self.manifest.graphs.get(graph)
        if spec is None:
            raise BackendError(f"unknown graph {graph!r}; these artifacts have {', '.join(self.manifest.graphs)}")
        return spec

    def run(self, graph: str, inputs: Mapping[str, Any], keep_on_device: Sequence[str] = ()) -> dict[str, Any]:
        """inputs: tensor name -> array (or device value); returns every output by name.

        The inputs are checked against the contract (names, dtypes, ranks, fixed sizes) before
        the backend sees them."""
        spec = self.graph_spec(graph)
        check_feed(spec, inputs)
        return self.run_impl(spec, inputs, keep_on_device)

    @abstractmethod
    def run_impl(self, spec: GraphSpec, inputs: Mapping[str, Any], keep_on_device: Sequence[str]) -> dict[str, Any]:
        """Run ``spec``'s graph on inputs that passed :func:`check_feed`; every output by name."""

    def graph_sha256(self, graph: str) -> str:
        """sha256 of the file that runs ``graph`` (ONNX graph or engine): the cache's model identity."""
        return self.manifest.files[self.graph_spec(graph).file]

    def put(self, array: np.ndarray) -> Any:
        """Place a constant input (e.g. class embeddings) where the backend reads it (host: as is)."""
        return array

    def to_host(self, value: Any) -> np.ndarray:
        """A value returned by ``run`` as a numpy array."""
        return np.asarray(value)

    def release(self, graph: str) -> None:  # noqa: B027 - a no-op unless a backend keeps per-graph memory
        """The caller is done with ``graph`` for now (the chunked decoder: a step after its last
        chunk of classes): a backend that keeps per-graph working memory may hand it back."""

    @abstractmethod
    def close(self) -> None:
        """Free what the backend holds (sessions, compiled models, engines, device memory); idempotent."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
