"""Peak RSS of a fresh process that loads one backend and segments: the deployment footprint.

In the benchmark's own process the PyTorch reference model and every library stay loaded, so
its RSS figures are deltas over a crowded baseline. Here a child process imports only what the
backend needs (``escnet_runtime`` backends never import torch; the check is reported), opens
the backend, and for each (classes, batch) point in increasing order resets the kernel's RSS
high-water mark, embeds the vocabulary and segments the batch once, and reads the peak.

Parent side: :func:`measure_isolated`; child side: :func:`measure_here`, run by
:func:`escnet_bench.child.run_function`.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

from escnet_bench.child import ChildError, run_function

METHOD = (
    "fresh child process per backend (escnet_bench.isolated.measure_here): imports, opens the backend, then per point "
    "(classes ascending) resets VmHWM, embeds the vocabulary and segments the batch once; peak = VmHWM"
)


@dataclass(frozen=True)
class IsolatedRequest:
    backend: str  # "torch" or an escnet_runtime backend name
    preset: str
    artifacts: str
    checkpoint: str | None  # reference weights for "torch" (None: the preset seeded with ``seed``)
    seed: int
    batch_size: int
    points: list[tuple[int, int]]
    names: dict[str, list[str]]  # str(classes) -> names
    class_chunk: int | None = None  # classes per decoder call (None: the manifest's / the model config's)
    cpp_lib: str | None = None  # the C++ runtime's library (cpp-* backends; None: its default place)


@dataclass(frozen=True)
class IsolatedResult:
    rss_after_imports_mib: float | None
    rss_after_load_mib: float | None
    peaks_mib: dict[str, float | None]  # "T,B" -> peak RSS of the process during that point
    torch_imported: bool
    error: str | None = None


def measure_isolated(request: IsolatedRequest) -> IsolatedResult:
    """Run :func:`measure_here` in a fresh process; a failing child is a result with ``error`` set."""
    try:
        run = run_function(measure_here, asdict(request))
    except ChildError as e:
        return IsolatedResult(None, None, {}, False, str(e))
    return IsolatedResult(**run.value)


def _load(request: IsolatedRequest) -> tuple[Any, Any]:
    """(set_vocabulary(names), segment(images)) callables for the requested backend."""
    if request.backend in PEERS:
        return _contender_calls(request)
    if request.backend == "torch":
        import torch

        from escnet import build_model, load_checkpoint
        from escnet_bench.reference import segment_torch

        if request.checkpoint:
            model = load_checkpoint(request.checkpoint, preset=request.preset).eval()
        else:
            torch.manual_seed(request.seed)
            model = build_model(request.preset).eval()
        state: dict[str, Any] = {}

        def set_vocabulary(names: list[str]) -> None:
            with torch.inference_mode():
                state["text"] = model.embed_classes(names)

        def segment(images: Any) -> Any:
            with torch.inference_mode():
                chunk = -1 if request.class_chunk is None else request.class_chunk
                return segment_torch(model, torch.from_numpy(images), state["text"], chunk).numpy()

        return set_vocabulary, segment
    from escnet_runtime import Segmenter

    seg = Segmenter(
        request.artifacts,
        backend=request.backend,
        disk_cache=False,
        batch_size=request.batch_size,
        class_chunk=request.class_chunk,
    )
    return seg.set_vocabulary, seg.segment


# The CPU torch peers, the int8 backends and the C++ runtime open through their contenders
# (autocast, compile, ARTIFACTS-int8, libescnet).
PEERS = frozenset(
    {"torch-bf16", "torch-compile", "torch-compile-bf16", "ort-cpu-int8", "ov-cpu-int8"}
    | {"cpp-cpu", "cpp-cpu-bf16", "cpp-cpu-int8"}
)


def _contender_calls(request: IsolatedRequest) -> tuple[Any, Any]:
    from pathlib import Path

    from escnet_bench.contenders.registry import SPECS
    from escnet_bench.contenders.runtime import RuntimeContender

    family, artifacts = SPECS[request.backend].family, Path(request.artifacts)
    if family == "cpp":
        from escnet_bench.contenders.cpp import CppContender

        library = Path(request.cpp_lib) if request.cpp_lib else None
        c: Any = CppContender(request.backend, artifacts, library, request.class_chunk)
    elif family == "runtime":
        c = RuntimeContender(request.backend, artifacts, request.batch_size, request.class_chunk)
    else:
        import torch

        from escnet import build_model, load_checkpoint
        from escnet_bench.contenders.torch_eager import TorchContender

        torch.manual_seed(request.seed)
        model = load_checkpoint(request.checkpoint) if request.checkpoint else build_model(request.preset)
        c = TorchContender(request.backend, model.eval(), class_chunk=request.class_chunk)
    return c.set_vocabulary, lambda images: c.segment_fn(images)()


def measure_here(raw: dict[str, Any]) -> dict[str, Any]:
    """Child side: ``raw`` is an :class:`IsolatedRequest` as a dict; returns an :class:`IsolatedResult` as one."""
    from escnet_bench.inputs import synthetic_images  # numpy only
    from escnet_bench.memory import current_rss_mib, release_free_memory, reset_rss_peak, rss_peak_mib

    request = IsolatedRequest(**{**raw, "points": [tuple(p) for p in raw["points"]]})
    after_imports = current_rss_mib()
    set_vocabulary, segment = _load(request)
    after_load = current_rss_mib()
    peaks: dict[str, float | None] = {}
    for classes, batch in sorted(request.points):
        images = synthetic_images(batch, request.seed)
        release_free_memory()
        reset_rss_peak()
        set_vocabulary(request.names[str(classes)])
        segment(images)
        peaks[f"{classes},{batch}"] = rss_peak_mib()
    return asdict(IsolatedResult(after_imports, after_load, peaks, "torch" in sys.modules))
