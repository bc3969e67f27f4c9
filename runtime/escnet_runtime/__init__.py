"""escnet_runtime: the torch-free deployment runtime (contract, tokenizer, backends, pipeline).

Imports numpy, onnxruntime, Pillow, regex/ftfy and (optionally, only for the "trt" backend)
tensorrt; never torch, open_clip or escnet.
"""

from escnet_runtime.cache import ModelIdentity, TextEmbeddingCache, default_cache_dir
from escnet_runtime.contract import FORMAT_VERSION, GRAPH_NAMES, GraphSpec, ModelDims, TensorSpec, graph_specs
from escnet_runtime.errors import BackendError, InputError
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest, write_manifest
from escnet_runtime.segmenter import Segmenter, SegmentResult, precompute_vocabulary
from escnet_runtime.tokenizer import ClipTokenizer
from escnet_runtime.vocabulary import ClassNameTruncatedWarning

__all__ = [
    "FORMAT_VERSION",
    "GRAPH_NAMES",
    "BackendError",
    "ClassNameTruncatedWarning",
    "ClipTokenizer",
    "GraphSpec",
    "InputError",
    "Manifest",
    "ManifestError",
    "ModelDims",
    "ModelIdentity",
    "SegmentResult",
    "Segmenter",
    "TensorSpec",
    "TextEmbeddingCache",
    "default_cache_dir",
    "graph_specs",
    "load_manifest",
    "precompute_vocabulary",
    "write_manifest",
]
