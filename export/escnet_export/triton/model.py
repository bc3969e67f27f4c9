"""The ``escnet`` Triton Python model: the whole pipeline through escnet_runtime.

``escnet-export triton`` copies this file into the repository as ``escnet/1/model.py``; only
Triton's Python backend imports it (``triton_python_backend_utils`` exists only there). The
server's Python environment needs ``escnet-runtime`` (``pip install ./runtime``).

Tensors cross the backend as DLPack (``np.from_dlpack`` / ``Tensor.from_dlpack``), never through
``as_numpy()`` or ``Tensor(name, ndarray)``: the stub of tritonserver <= 24.10 is built with
pybind11 2.10, which reads NumPy 1's dtype layout; under NumPy 2 it sees every item size as 0
(inputs arrive as copies of their first element, outputs leave empty, BYTES tensors cannot be
read at all). DLPack carries shape and dtype without that path, so NumPy 1 and 2 both work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from escnet_runtime import Segmenter
from escnet_runtime.errors import InputError
from escnet_runtime.fileio import sha256_file
from escnet_runtime.serving import ServeLimits, ServeRequest, ServeResult, ServingPipeline, decode_names, encode_names

IMAGE_INPUT, CLASSES_INPUT = "image", "classes"
LABELS_OUTPUT, NAMES_OUTPUT = "labels", "class_names"
ARTIFACTS_DIR = "artifacts"


def _quiet_used_capsules(unraisable: Any) -> None:
    """The stub marks the DLPack capsules it takes over "used_dlpack" (DLPack's name is
    "used_dltensor"), so NumPy's capsule destructor reports each one as an error while the stub
    frees the tensor itself; drop that report, pass on every other."""
    if 'capsule object "used_dlpack"' in repr(unraisable.object):
        return
    _default_hook(unraisable)


_default_hook = sys.unraisablehook


def _read(request: Any) -> ServeRequest:
    """One Triton request -> images (B, H, W, 3) uint8 and its class names (None: the configured ones)."""
    image = pb_utils.get_input_tensor_by_name(request, IMAGE_INPUT)
    if image is None:  # Triton 2.51's Python backend passes requests that lack a required input
        raise InputError(f"the request has no {IMAGE_INPUT!r} input; expected UINT8 images [B, H, W, 3]")
    images = np.from_dlpack(image)
    classes = pb_utils.get_input_tensor_by_name(request, CLASSES_INPUT)
    if classes is None:
        return ServeRequest(images, None)
    rows = np.from_dlpack(classes)  # (B, n) uint8
    if rows.ndim != 2 or any(not np.array_equal(rows[0], r) for r in rows[1:]):
        raise InputError("classes must be the same UTF-8 list for every image of a request")
    return ServeRequest(images, decode_names(rows[0]) or None)


def _one_line(error: BaseException) -> str:
    """``Type: first line of the message``: what a client sees of a failing engine."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:300]}" if lines else type(error).__name__


def _response(result: ServeResult) -> Any:
    if result.error is not None or result.labels is None:
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(result.error or "no result"))
    labels = np.ascontiguousarray(result.labels, dtype=np.int32)  # (B, H, W)
    names = np.ascontiguousarray(np.tile(encode_names(result.names), (len(labels), 1)))  # (B, n)
    return pb_utils.InferenceResponse(
        output_tensors=[
            pb_utils.Tensor.from_dlpack(LABELS_OUTPUT, labels),
            pb_utils.Tensor.from_dlpack(NAMES_OUTPUT, names),
        ]
    )


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        sys.unraisablehook = _quiet_used_capsules
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = Path(args["model_repository"]) / args["model_version"]
        artifacts = version_dir / ARTIFACTS_DIR
        manifest = artifacts / "manifest.json"
        if not manifest.is_file() or sha256_file(manifest) != params["manifest_sha256"]:
            raise pb_utils.TritonModelException(
                f"{manifest}: missing or not the manifest this repository was written for"
            )
        backend: Any = params["backend"]
        verify = True
        if params.get("bls_models"):
            from bls_backend import BlsBackend, verify_bls_files  # beside this file

            verify_bls_files(artifacts, Path(args["model_repository"]).parent, json.loads(params["bls_models"]))
            backend, verify = BlsBackend(artifacts, json.loads(params["bls_models"])), False
        chunk = int(params.get("class_chunk", "0")) or None
        batch = max(1, int(config.get("max_batch_size", 0)))  # views per image-encoder call
        segmenter = Segmenter(
            artifacts, backend=backend, disk_cache=False, verify=verify, class_chunk=chunk, batch_size=batch
        )
        self.pipeline = ServingPipeline(
            segmenter,
            vocabulary=tuple(json.loads(params.get("vocabulary", "[]"))),
            limits=ServeLimits(max_classes=int(params["max_classes"])),
        )
        pb_utils.Logger.log_info(f"escnet: {artifacts} on {params['backend']}, numpy {np.__version__}")

    def execute(self, requests: list[Any]) -> list[Any]:
        parsed: list[ServeRequest | None] = []
        results: list[ServeResult] = []
        for request in requests:
            try:
                parsed.append(_read(request))
                results.append(ServeResult())
            except InputError as e:
                parsed.append(None)
                results.append(ServeResult(error=str(e)))
            except Exception as e:  # one line, never a traceback with the server's paths
                parsed.append(None)
                results.append(ServeResult(error=f"unreadable request ({type(e).__name__})"))
        valid = [i for i, p in enumerate(parsed) if p is not None]
        try:
            served = self.pipeline([parsed[i] for i in valid])  # type: ignore[misc]
        except Exception as e:  # a failing engine answers every request with the error, the stub lives on
            served = [ServeResult(error=_one_line(e)) for _ in valid]
        for i, res in zip(valid, served, strict=True):
            results[i] = res
        return [_response(r) for r in results]

    def finalize(self) -> None:
        self.pipeline = None  # type: ignore[assignment]
