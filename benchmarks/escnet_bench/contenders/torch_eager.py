"""PyTorch contenders: what a PyTorch user runs instead of exporting.

On the CPU: eager fp32 (the reference), eager with ``torch.autocast("cpu", torch.bfloat16)``
(``torch-bf16``, the one line a user adds), and ``torch.compile`` (inductor's C++ code) in fp32
and under bf16 autocast. On a GPU: eager fp32, fp16/bf16 autocast and ``torch.compile``.
Compiling happens on a compiled function's first call for each input shape; those calls are
timed apart (``details()["compile_s"]``) so that compile time never enters a run-time figure.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from escnet_runtime import contract as C

from escnet import ESCNet
from escnet_bench.contenders.base import Cache, Contender, ContenderSpec, ContenderUnavailable, VocabularyRun
from escnet_bench.reference import segment_torch

TORCH_SPECS: dict[str, ContenderSpec] = {
    s.name: s
    for s in (
        ContenderSpec("torch", "torch", "cpu", "fp32", "PyTorch eager fp32 on the CPU (the reference)"),
        ContenderSpec("torch-bf16", "torch", "cpu", "bf16", "PyTorch eager, bf16 autocast on the CPU"),
        ContenderSpec("torch-compile", "torch", "cpu", "fp32", "torch.compile (inductor) fp32 on the CPU"),
        ContenderSpec("torch-compile-bf16", "torch", "cpu", "bf16", "torch.compile (inductor), bf16 autocast, CPU"),
        ContenderSpec("torch-cuda", "torch", "cuda", "fp32", "PyTorch eager fp32 on the GPU (TF32 off)"),
        ContenderSpec("torch-cuda-fp16", "torch", "cuda", "fp16", "PyTorch eager, fp16 autocast on the GPU"),
        ContenderSpec("torch-cuda-bf16", "torch", "cuda", "bf16", "PyTorch eager, bf16 autocast on the GPU"),
        ContenderSpec("torch-cuda-compile", "torch", "cuda", "fp32", "torch.compile (inductor) fp32 on the GPU"),
    )
}
COMPILED = frozenset({"torch-compile", "torch-compile-bf16", "torch-cuda-compile"})
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _check_available(spec: ContenderSpec) -> None:
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise ContenderUnavailable("no CUDA device (torch.cuda.is_available() is False)")
    if spec.device == "cuda" and spec.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ContenderUnavailable("this GPU does not support bf16")
    if spec.name == "torch-cuda-compile":
        try:
            import triton  # noqa: F401
        except ImportError:
            raise ContenderUnavailable("torch.compile on the GPU needs triton, which is not installed") from None
    if spec.name in COMPILED and spec.device == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
        raise ContenderUnavailable("torch.compile on the CPU needs a C++ compiler (c++ / g++), which is not on PATH")


class TorchContender(Contender):
    """The ESC-Net PyTorch model as a contender.

    ``class_chunk``: classes per decoder call (None: the model config's).
    """

    def __init__(self, name: str, model: ESCNet, class_chunk: int | None = None) -> None:
        self.spec = TORCH_SPECS[name]
        self.class_chunk = model.config.class_chunk if class_chunk is None else class_chunk
        _check_available(self.spec)
        self.device = torch.device(self.spec.device)
        self.model = model if self.spec.device == "cpu" else copy.deepcopy(model).to(self.device).eval()
        self.memory_device = "cuda-torch" if self.spec.device == "cuda" else "cpu"
        if self.spec.device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        m = self.model
        self.compile_s: dict[str, float] = {}  # "graph shape" -> seconds of the call that compiled it
        compiled = self.spec.name in COMPILED
        self._encode_image = self._compiled("encode_image", m.encode_image) if compiled else m.encode_image
        self._encode_text = self._compiled("encode_text", m.encode_text) if compiled else m.encode_text
        self._decode = self._compiled("decode", m.decode) if compiled else m.decode
        self._text: torch.Tensor | None = None

    def _compiled(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``torch.compile(fn)``; each call with new input shapes (when inductor compiles) is timed
        into ``compile_s`` instead of being counted as a run."""
        compiled = torch.compile(fn)

        def call(*args: Any, **kwargs: Any) -> Any:
            key = f"{name} {[tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]}"
            if key in self.compile_s:
                return compiled(*args, **kwargs)
            start = time.perf_counter()
            out = compiled(*args, **kwargs)
            self.sync()
            self.compile_s[key] = time.perf_counter() - start
            return out

        return call

    @property
    def uses_cuda_events(self) -> bool:
        return self.spec.device == "cuda"

    def sync(self) -> None:
        if self.spec.device == "cuda":
            torch.cuda.synchronize()

    def _ctx(self) -> contextlib.AbstractContextManager[Any]:
        if self.spec.precision in _AUTOCAST:
            return torch.autocast(device_type=self.spec.device, dtype=_AUTOCAST[self.spec.precision])
        return contextlib.nullcontext()

    def _run(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with torch.inference_mode(), self._ctx():
                return fn()

        return call

    def _staged(self, call: Callable[[], Any]) -> Callable[[], Any]:
        """A compiled contender's callable is run once here, while inputs are staged (untimed): the
        compilation for these shapes lands in ``compile_s``, never in a timed run."""
        if self.spec.name in COMPILED:
            call()
        return call

    def graph_fn(self, graph: str, inputs: dict[str, np.ndarray]) -> Callable[[], Any]:
        staged = {k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}
        if graph == C.IMAGE_ENCODER:
            return self._staged(self._run(lambda: self._encode_image(staged[C.IMAGE])))
        if graph == C.TEXT_ENCODER:
            return self._staged(self._run(lambda: self._encode_text(staged[C.TOKEN_IDS])))
        if graph == C.DECODER:
            feats = (staged[C.DENSE], staged[C.GUIDANCE_A], staged[C.GUIDANCE_B])
            text = staged[C.CLASS_EMBEDDINGS]
            return self._staged(self._run(lambda: self._decode(*feats, text, class_chunk=self.class_chunk)))
        raise ValueError(f"unknown graph {graph!r}")

    def graph_outputs(self, graph: str, raw: Any) -> dict[str, np.ndarray]:
        as_np = lambda t: t.detach().float().cpu().numpy()
        if graph == C.IMAGE_ENCODER:
            return {C.DENSE: as_np(raw.dense), C.GUIDANCE_A: as_np(raw.guidance_a), C.GUIDANCE_B: as_np(raw.guidance_b)}
        if graph == C.TEXT_ENCODER:
            return {C.TEXT_EMBEDDINGS: as_np(raw)}
        return {C.LOGITS: as_np(raw)}

    def vocabulary_fn(self, names: list[str], cache: Cache) -> VocabularyRun | None:
        if cache != "cold":
            return None  # the reference keeps no text-embedding cache
        return VocabularyRun(self._run(lambda: self.model.embed_classes(names)))

    def set_vocabulary(self, names: list[str]) -> None:
        self._text = self._run(lambda: self.model.embed_classes(names))()

    def segment_fn(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        if self._text is None:
            raise RuntimeError("set_vocabulary first")
        staged = torch.from_numpy(images)  # uint8 stays on the CPU: pre-processing runs there
        text = self._text
        graphs = {"encode_image": self._encode_image, "decode": self._decode}  # compiled for torch-compile
        run = lambda: segment_torch(self.model, staged, text, self.class_chunk, **graphs).cpu().numpy()
        return self._staged(self._run(run))

    def details(self) -> dict[str, Any]:
        d: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        d["class_chunk"] = self.class_chunk  # None: every vocabulary in one decoder call
        if self.spec.device == "cuda":
            d["gpu"] = torch.cuda.get_device_name()
        if self.spec.precision in _AUTOCAST:
            d["autocast"] = f"torch.autocast({self.spec.device!r}, {_AUTOCAST[self.spec.precision]})"
        if self.spec.name in COMPILED:
            d["compile_s"] = self.compile_s  # live: filled as shapes compile, apart from the run times
        return d

    def close(self) -> None:
        if self.spec.device == "cuda":
            self.model = None  # type: ignore[assignment]
            torch.cuda.empty_cache()
