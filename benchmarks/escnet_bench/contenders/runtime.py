"""Contenders that run an escnet_runtime backend: ONNX Runtime (CPU, CUDA, TensorRT provider),
TensorRT engines, OpenVINO (CPU).

The graphs run through the runtime's own backend objects (``Segmenter.backend.run``), the
vocabulary through its tokenizer and text-embedding cache, and end to end through
``Segmenter.segment``: what a user of the runtime gets, not a re-implementation. The cache
lives in a private temporary folder, so "cold" really is cold and the user's cache is untouched.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from escnet_runtime import BackendError, InputError, ManifestError, Segmenter, TextEmbeddingCache
from escnet_runtime import contract as C

from escnet_bench.contenders.base import Cache, Contender, ContenderSpec, ContenderUnavailable, VocabularyRun

# One table per contender family, alike in shape with contenders/torch_eager.py's TORCH_SPECS: the
# registry (contenders/registry.py) joins them.
RUNTIME_SPECS: dict[str, ContenderSpec] = {
    s.name: s
    for s in (
        ContenderSpec("ort-cpu", "runtime", "cpu", "fp32", "escnet_runtime, ONNX Runtime CPU provider"),
        ContenderSpec("ort-cuda", "runtime", "cuda", "fp32", "escnet_runtime, ONNX Runtime CUDA provider"),
        ContenderSpec("ort-trt", "runtime", "cuda", "fp32", "escnet_runtime, ONNX Runtime TensorRT provider"),
        ContenderSpec("trt", "runtime", "cuda", "fp32", "escnet_runtime, TensorRT engines (precision as built)"),
        ContenderSpec("ov-cpu", "runtime", "cpu", "fp32", "escnet_runtime, OpenVINO CPU, f32"),
        ContenderSpec("ov-cpu-bf16", "runtime", "cpu", "bf16", "escnet_runtime, OpenVINO CPU, bf16 (prompts f32)"),
        ContenderSpec("ort-cpu-int8", "runtime", "cpu", "int8", "escnet_runtime, ONNX Runtime CPU, int8 artifacts"),
        ContenderSpec("ov-cpu-int8", "runtime", "cpu", "int8", "escnet_runtime, OpenVINO CPU, int8 artifacts"),
    )
}
# An int8 contender runs its runtime backend on the quantised folder beside the artifacts:
# ARTIFACTS-int8 (written by ``escnet-export quantize --artifacts ARTIFACTS --out ARTIFACTS-int8``).
INT8_BACKENDS = {"ort-cpu-int8": "ort-cpu", "ov-cpu-int8": "ov-cpu"}
INT8_SUFFIX = "-int8"
_PROVIDERS = {
    "ort-cpu-int8": "CPUExecutionProvider",
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}
WARM_UP_CLASSES = ["warm-up"]


def unavailable_reason(name: str) -> str | None:
    """Why ``name`` cannot run on this machine, checked without any artifacts; None if it may."""
    spec = RUNTIME_SPECS[name]
    if spec.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "no CUDA device (torch.cuda.is_available() is False)"
    if name in _PROVIDERS:
        import onnxruntime as ort

        if _PROVIDERS[name] not in ort.get_available_providers():
            return (
                f"this onnxruntime {ort.__version__} has no {_PROVIDERS[name]} "
                f"(it has {', '.join(ort.get_available_providers())}; install onnxruntime-gpu)"
            )
    elif name.startswith("ov-"):
        if importlib.util.find_spec("openvino") is None:
            return "OpenVINO is not installed (pip install 'escnet[openvino]')"
    elif importlib.util.find_spec("tensorrt") is None:
        return "TensorRT's Python package (tensorrt) is not installed"
    return None


def int8_folder(artifacts: Path) -> Path:
    """Where the int8 contenders look for the quantised artifacts: ARTIFACTS-int8 beside ARTIFACTS."""
    artifacts = Path(artifacts)
    return artifacts.with_name(artifacts.name + INT8_SUFFIX)


class RuntimeContender(Contender):
    """A ``Segmenter`` on one runtime backend, opened on the artifacts folder (every session loaded up front).

    ``class_chunk``: classes per decoder call (None: the manifest's).
    """

    def __init__(self, name: str, artifacts: Path, batch_size: int, class_chunk: int | None = None) -> None:
        reason = unavailable_reason(name)
        if reason is not None:
            raise ContenderUnavailable(reason)
        backend, folder = INT8_BACKENDS.get(name, name), int8_folder(artifacts) if name in INT8_BACKENDS else artifacts
        if name in INT8_BACKENDS and not (folder / C.MANIFEST_FILE).is_file():
            raise ContenderUnavailable(
                f"no int8 artifacts at {folder}; write them with escnet-export quantize --artifacts {artifacts} "
                f"--synthetic 64 --out {folder}"
            )
        self._tmp = Path(tempfile.mkdtemp(prefix="escnet-bench-cache-"))
        self._cold_runs = 0
        try:
            self.seg = Segmenter(
                folder, backend=backend, cache_dir=self._tmp / "cache", batch_size=batch_size, class_chunk=class_chunk
            )
            # Load every session now: a provider that silently falls back is found here, and
            # session creation is part of the load time, not of the first timed figure.
            held = self.seg.manifest.weights_precision()
            if name in INT8_BACKENDS and held != "int8":
                raise BackendError(f"{folder}: its manifest says precision {held}, not int8; quantize it again")
            self.seg.set_vocabulary(WARM_UP_CLASSES)
            self.seg.segment(np.zeros((32, 32, 3), dtype=np.uint8))
        except (BackendError, ManifestError, InputError) as e:  # InputError: e.g. no step graphs to chunk
            self.close()
            raise ContenderUnavailable(str(e)) from None
        except BaseException:
            self.close()
            raise
        self.backend = self.seg.backend
        precision = RUNTIME_SPECS[name].precision if name in INT8_BACKENDS else self.backend.precision
        self.spec = replace(RUNTIME_SPECS[name], precision=precision)
        self.memory_device = "cuda-sampled" if self.spec.device == "cuda" else "cpu"

    def graph_fn(self, graph: str, inputs: dict[str, np.ndarray]) -> Callable[[], Any]:
        if graph == C.DECODER:
            # The decoder as the Segmenter runs it: one call, or its steps over class chunks.
            features = {k: v for k, v in inputs.items() if k != C.CLASS_EMBEDDINGS}
            embeddings = inputs[C.CLASS_EMBEDDINGS]
            return lambda: {C.LOGITS: self.seg.decode(features, embeddings)}
        staged = {k: self.backend.put(v) if k != C.IMAGE else v for k, v in inputs.items()}
        return lambda: self.backend.run(graph, staged)

    def graph_outputs(self, graph: str, raw: Any) -> dict[str, np.ndarray]:
        return {k: np.asarray(self.backend.to_host(v), dtype=np.float32) for k, v in raw.items()}

    def _fresh_cache(self) -> None:
        self._cold_runs += 1
        cache = TextEmbeddingCache(self._tmp / f"cold-{self._cold_runs}", dim=self.seg.cache.dim)
        self.seg.set_cache(cache)

    def vocabulary_fn(self, names: list[str], cache: Cache) -> VocabularyRun | None:
        encode = lambda: self.seg.encode_vocabulary(names)
        if cache == "cold":
            return VocabularyRun(encode, before=self._fresh_cache)
        encode()  # the vocabulary is now cached (memory and disk)
        if cache == "warm":
            return VocabularyRun(encode)
        return VocabularyRun(encode, before=self.seg.cache.clear_memory)

    def set_vocabulary(self, names: list[str]) -> None:
        self.seg.set_vocabulary(names)

    def segment_fn(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        return lambda: np.stack([r.labels for r in self.seg.segment(images)])

    def details(self) -> dict[str, Any]:
        import onnxruntime as ort

        d: dict[str, Any] = {"artifacts": str(self.seg.folder), "batch_size": self.seg.batch_size}
        d["class_chunk"] = self.seg.class_chunk  # None: every vocabulary in one decoder call
        d["precision"] = self.backend.precision
        if self.spec.name in INT8_BACKENDS:
            extra = self.seg.manifest.extra
            d["quantization"] = {k: extra.get(k) for k in ("precision", "gates", "calibration")}
        if self.spec.name in _PROVIDERS:
            d["onnxruntime"] = ort.__version__
            d["provider"] = _PROVIDERS[self.spec.name]
        if self.spec.name.startswith("ov-"):
            import openvino

            d["openvino"] = openvino.__version__
            d["graph_precision"] = dict(self.backend.graph_precision)  # graph -> f32 / bf16 as compiled
            d["model_cache_dir"] = str(self.backend.model_cache_dir) if self.backend.model_cache_dir else None
        return d

    def close(self) -> None:
        if getattr(self, "seg", None) is not None:
            self.seg.close()
        self.seg = None  # type: ignore[assignment]
        shutil.rmtree(self._tmp, ignore_errors=True)
