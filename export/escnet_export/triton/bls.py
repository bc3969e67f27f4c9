"""A runtime backend whose graphs are Triton models, called through BLS (GPU servers).

``escnet-export triton --bls`` copies this file into the repository as ``escnet/1/bls_backend.py``;
only Triton's Python backend imports it. Each graph of the artifacts is its own model
(``onnxruntime_onnx`` or ``tensorrt_plan``); the ``escnet`` Python model keeps the pipeline
(tokenizer, text cache, pre/post-processing, the chunked decoder's loops) and sends every graph
call to its model with ``pb_utils.InferenceRequest(...).exec()``, so Triton schedules the
engines on the GPU. Tensors cross as DLPack (see triton_model.py for why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from escnet_runtime.backends.base import Backend
from escnet_runtime.contract import GraphSpec
from escnet_runtime.errors import BackendError
from escnet_runtime.fileio import sha256_file
from escnet_runtime.manifest import Manifest, load_manifest

# bls_models parameter: graph -> {"model": Triton model name, "file": its file, "sha256": ..., "precision": ...}
GraphModels = Mapping[str, Mapping[str, str]]


def verify_bls_files(artifacts: Path, repository: Path, models: GraphModels) -> None:
    """The tokenizer vocabulary beside the manifest and every graph model's file match their sha256."""
    manifest = load_manifest(artifacts, verify=False)
    vocab = artifacts / manifest.tokenizer.vocab_file
    if not vocab.is_file() or sha256_file(vocab) != manifest.files[manifest.tokenizer.vocab_file]:
        raise pb_utils.TritonModelException(f"{vocab}: missing or does not match the manifest")
    for graph, entry in models.items():
        path = repository / entry["model"] / "1" / entry["file"]
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            raise pb_utils.TritonModelException(f"{path}: the {graph} model is missing or was changed")


class BlsBackend(Backend):
    """The runtime's Backend over BLS calls; values are host numpy arrays.

    Thread safety: every call is its own ``InferenceRequest``; Triton schedules them."""

    def __init__(self, artifacts: Path, models: GraphModels) -> None:
        manifest: Manifest = load_manifest(artifacts, verify=False)
        precisions = {entry.get("precision", "fp32") for entry in models.values()}
        super().__init__("bls", "fp16" if "fp16" in precisions else "fp32", manifest)
        self.models = models

    def graph_sha256(self, graph: str) -> str:
        return self.models[graph]["sha256"]

    def run_impl(self, spec: GraphSpec, inputs: Mapping[str, Any], keep_on_device: Sequence[str]) -> dict[str, Any]:
        graph = spec.name
        tensors = [pb_utils.Tensor.from_dlpack(k, np.ascontiguousarray(v)) for k, v in inputs.items()]
        request = pb_utils.InferenceRequest(
            model_name=self.models[graph]["model"],
            requested_output_names=spec.output_names,
            inputs=tensors,
            preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0),
        )
        response = request.exec()
        if response.has_error():
            raise BackendError(f"{graph}: {response.error().message()}")
        return {
            name: np.from_dlpack(pb_utils.get_output_tensor_by_name(response, name)).copy()
            for name in spec.output_names
        }

    def close(self) -> None:
        """Nothing to free here: the server owns the models this backend calls."""
