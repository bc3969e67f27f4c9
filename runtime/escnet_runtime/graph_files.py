"""A graph's verified bytes: the ONNX file and any external-data files it references.

Engines are built from these bytes, never from paths, so a file swapped after the manifest was
checked cannot run: the bytes handed over are the bytes whose sha256 matched (``read_verified``).

External data: ``escnet-export onnx`` keeps a graph's weights in ``<graph>.onnx.data`` when the
graph is over protobuf's 2 GB limit. ONNX Runtime, given a graph as bytes, would resolve such a
file against the current directory; so every external-data location a graph names must be a
file the manifest lists (read and hashed here, handed over from memory), or the graph is
refused. Finding the locations needs the ``onnx`` package; graphs without external data (their
bytes do not contain the protobuf key "location") never import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escnet_runtime.manifest import Manifest, ManifestError, read_verified
from escnet_runtime.manifest_checks import ManifestFieldError, check_relative

_LOCATION_KEY = b"location"  # StringStringEntryProto key of a tensor's external-data path


@dataclass(frozen=True)
class GraphBytes:
    """model: the ONNX file's bytes; external: location -> bytes of each external-data file."""

    name: str
    file: str
    model: bytes
    external: dict[str, bytes] = field(default_factory=dict)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of an onnx GraphProto, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: Any) -> Iterator[Any]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("g"):
            yield from _tensors(attr.g)
        for sub in attr.graphs:
            yield from _tensors(sub)


def external_locations(model: bytes, file: str) -> set[str]:
    """The external-data locations an ONNX model's tensors name (empty for a self-contained model)."""
    if _LOCATION_KEY not in model:
        return set()
    try:
        import onnx
    except ImportError:
        raise ManifestError(
            f"{file} may keep weights in external data, and checking that needs the onnx package "
            "(pip install onnx); refused rather than loading unverified files"
        ) from None
    try:
        proto = onnx.load_model_from_string(model)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ManifestError(f"{file}: not a readable ONNX model ({type(e).__name__})") from None
    tensors = [*_tensors(proto.graph), *(t for f in proto.functions for n in f.node for t in _node_tensors(n))]
    found = set()
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in t.external_data}
            found.add(entries.get("location", ""))
    return found


def verified_graph(folder: Path, manifest: Manifest, graph: str) -> GraphBytes:
    """Read ``graph``'s ONNX file and its external data, each checked against the manifest."""
    spec = manifest.graphs[graph]
    model = read_verified(folder, manifest, spec.file)
    external = {}
    for location in sorted(external_locations(model, spec.file)):
        try:
            check_relative(location, f"{spec.file}: external data")
        except ManifestFieldError as e:
            raise ManifestError(f"{folder}: {e}; refused") from None
        if location not in manifest.files:
            raise ManifestError(
                f"{folder}: {spec.file} keeps weights in {location!r}, which the manifest does not list "
                "with a sha256; refused"
            )
        external[location] = read_verified(folder, manifest, location)
    return GraphBytes(graph, spec.file, model, external)
