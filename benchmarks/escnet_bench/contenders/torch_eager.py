"""PyTorch contenders: eager fp32 on the CPU (the reference), and on a GPU fp32, fp16/bf16
autocast and ``torch.compile``."""

from __future__ import annotations

import contextlib
import copy
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
        ContenderSpec("torch-cuda", "torch", "cuda", "fp32", "PyTorch eager fp32 on the GPU (TF32 off)"),
        ContenderSpec("torch-cuda-fp16", "torch", "cuda", "fp16", "PyTorch eager, fp16 autocast on the GPU"),
        ContenderSpec("torch-cuda-bf16", "torch", "cuda", "bf16", "PyTorch eager, bf16 autocast on the GPU"),
        ContenderSpec("torch-compile", "torch", "cuda", "fp32", "torch.compile (inductor) fp32 on the GPU"),
    )
}
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _check_available(spec: ContenderSpec) -> None:
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise ContenderUnavailable("no CUDA device (torch.cuda.is_available() is False)")
    if spec.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ContenderUnavailable("this GPU does not support bf16")
    if spec.name == "torch-compile":
        try:
            import triton  # noqa: F401
        except ImportError:
            raise ContenderUnavailable("torch.compile on the GPU needs triton, which is not installed") from None


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
        compiled = self.spec.name == "torch-compile"
        self._encode_image = torch.compile(m.encode_image) if compiled else m.encode_image
        self._encode_text = torch.compile(m.encode_text) if compiled else m.encode_text
        self._decode = torch.compile(m.decode) if compiled else m.decode
        self._text: torch.Tensor | None = None

    @property
    def uses_cuda_events(self) -> bool:
        return self.spec.device == "cuda"

    def sync(self) -> None:
        if self.spec.device == "cuda":
            torch.cuda.synchronize()

    def _ctx(self) -> contextlib.AbstractContextManager[Any]:
        if self.spec.precision in _AUTOCAST:
            return torch.autocast(device_type="cuda", dtype=_AUTOCAST[self.spec.precision])
        return contextlib.nullcontext()

    def _run(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with torch.inference_mode(), self._ctx():
                return fn()

        return call

    def graph_fn(self, graph: str, inputs: dict[str, np.ndarray]) -> Callable[[], Any]:
        staged = {k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}
        if graph == C.IMAGE_ENCODER:
            return self._run(lambda: self._encode_image(staged[C.IMAGE]))
        if graph == C.TEXT_ENCODER:
            return self._run(lambda: self._encode_text(staged[C.TOKEN_IDS]))
        if graph == C.DECODER:
            feats = (staged[C.DENSE], staged[C.GUIDANCE_A], staged[C.GUIDANCE_B])
            text = staged[C.CLASS_EMBEDDINGS]
            return self._run(lambda: self._decode(*feats, text, class_chunk=self.class_chunk))
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
        return self._run(lambda: segment_torch(self.model, staged, text, self.class_chunk, **graphs).cpu().numpy())

    def details(self) -> dict[str, Any]:
        d: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        d["class_chunk"] = self.class_chunk  # None: every vocabulary in one decoder call
        if self.spec.device == "cuda":
            d["gpu"] = torch.cuda.get_device_name()
        return d

    def close(self) -> None:
        if self.spec.device == "cuda":
            self.model = None  # type: ignore[assignment]
            torch.cuda.empty_cache()
