"""The int8 folder as it is built: files copied or quantised into the staging folder, hashed, and
its manifest (the fp32 contract, the new sha256s, and the quantisation record in ``extra``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import onnx
from escnet_runtime.fileio import atomic_path, sha256_file
from escnet_runtime.manifest import Manifest, read_verified, write_manifest

from escnet_export.errors import ExportError

MAX_GRAPH_BYTES = 2**31 - 1  # protobuf's limit for a self-contained graph
PRECISION = "int8"


def copy_listed(src: Path, manifest: Manifest, staging: Path, skip: set[str]) -> None:
    """Every file the fp32 manifest lists, but ``skip``, copied into ``staging`` (verified first)."""
    for name in manifest.files:
        if name in skip:
            continue
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_bytes(read_verified(src, manifest, name))


def fp32_graph(src: Path, manifest: Manifest, graph: str) -> onnx.ModelProto:
    """The fp32 graph as hashed (its external data, if any, loaded from the verified bytes too)."""
    from escnet_runtime.graph_files import verified_graph

    verified = verified_graph(src, manifest, graph)
    model = onnx.load_model_from_string(verified.model)
    if verified.external:
        raise ExportError(
            f"{verified.file}: keeps its weights in external data; quantising such graphs is not supported"
        )
    return model


def save_graph(model: onnx.ModelProto, path: Path) -> int:
    """Write ``model`` self-contained and atomically; its size in bytes."""
    data = model.SerializeToString()
    if len(data) > MAX_GRAPH_BYTES:
        raise ExportError(f"{path.name}: the int8 graph is {len(data)} bytes, over protobuf's 2 GB limit")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return len(data)


def restore_fp32(src: Path, manifest: Manifest, staging: Path, graph: str) -> None:
    """Put the fp32 file of ``graph`` back into ``staging``."""
    copy_listed(src, manifest, staging, set(manifest.files) - {manifest.graphs[graph].file})


def int8_manifest(fp32: Manifest, staging: Path, extra: dict[str, Any]) -> Manifest:
    """The fp32 manifest with the staging folder's files and sha256s, ``precision`` int8 (format
    1.2), and ``extra`` recorded."""
    files = {name: sha256_file(staging / name) for name in sorted(fp32.files) if (staging / name).is_file()}
    return dataclasses.replace(
        fp32,
        files=files,
        extra={**fp32.extra, **extra},
        precision=PRECISION,
        sliding_window=fp32.sliding(),
        text_batch=fp32.texts_per_call(),
    )


def write_staged_manifest(fp32: Manifest, staging: Path, extra: dict[str, Any]) -> Path:
    """A manifest in ``staging`` for the runtime to open it with (the gates), rewritten at publishing."""
    return write_manifest(staging, int8_manifest(fp32, staging, extra))
