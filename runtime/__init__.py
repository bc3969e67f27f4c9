"""escnet_runtime: the torch-free deployment runtime (contract, tokenizer, backends, pipeline).

Imports numpy, onnxruntime and (optionally) tensorrt; never torch, open_clip or escnet.
"""

from .contract import FORMAT_VERSION, GRAPH_NAMES, GraphSpec, ModelDims, TensorSpec, graph_specs
from .manifest import Manifest, ManifestError, load_manifest, write_manifest

__all__ = [
    "FORMAT_VERSION",
    "GRAPH_NAMES",
    "GraphSpec",
    "Manifest",
    "ManifestError",
    "ModelDims",
    "TensorSpec",
    "graph_specs",
    "load_manifest",
    "write_manifest",
]
