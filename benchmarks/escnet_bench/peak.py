"""This machine's measured peak matmul throughput, the yardstick for utilisation figures.

A large square matmul is the friendliest workload a device has: its GFLOP/s is a practical
ceiling (below the datasheet figure) for what any backend can reach on the same device. On the
CPU the figure is the better of torch's matmul and ONNX Runtime's (MLAS): libraries differ (on
a 2-core AVX-512 EPYC, torch.matmul reached 199 GFLOP/s while ONNX Runtime's text encoder ran at
357), and a ceiling that one backend beats would report a utilisation over 100%. OpenVINO's MatMul
is measured too where it is installed. The CPU has a bf16 peak beside the fp32 one (AVX-512 bf16
dot products: torch's bf16 matmul and OpenVINO's MatMul compiled with a bf16 precision hint), so a
bf16 contender's utilisation is judged against what bf16 can reach, not against fp32's ceiling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PeakMatmul:
    """Best GFLOP/s of ``reps`` timed ``n x n @ n x n`` matmuls (2 n^3 FLOPs each)."""

    device: str
    dtype: str
    n: int
    reps: int
    threads: int
    gflops_per_s: float
    method: str
    by_library: dict[str, float] | None = None  # GFLOP/s of each library measured (CPU)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_peak_matmul(device: str = "cpu", dtype: str = "fp32", n: int | None = None, reps: int = 5) -> PeakMatmul:
    """Measure the peak matmul GFLOP/s with torch on ``device`` ("cpu" or "cuda") in ``dtype``.

    ``n`` defaults to 2048 on the CPU (about 17 GFLOP per product) and 8192 on a GPU. TF32 is
    disabled for fp32 on the GPU so that the figure is a true fp32 ceiling.
    """
    import torch

    size = n or (2048 if device == "cpu" else 8192)
    if dtype == "int8":
        return _int8_peak(device, size, reps)
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=torch_dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=torch_dtype)
    flops = 2.0 * size**3
    if device == "cuda":
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            torch.matmul(a, b)
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            best = float("inf")
            for _ in range(reps):
                start.record()
                torch.matmul(a, b)
                end.record()
                end.synchronize()
                best = min(best, start.elapsed_time(end) / 1e3)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev
        method = "best of CUDA-event-timed torch.matmul runs after one warm-up (TF32 off)"
    else:
        best = _best_seconds(lambda: torch.matmul(a, b), reps)
        by_library = {"torch": flops / best / 1e9}
        a32, b32 = a.float().numpy(), b.float().numpy()
        others = {"openvino": _openvino_matmul_seconds(a32, b32, reps, torch.get_num_threads(), dtype)}
        if torch_dtype == torch.float32:
            others["onnxruntime"] = _onnxruntime_matmul_seconds(a32, b32, reps, torch.get_num_threads())
        for library, seconds in others.items():
            if seconds is not None:
                by_library[library] = flops / seconds / 1e9
                best = min(best, seconds)
        method = (
            "best of perf_counter-timed runs after one warm-up, of torch.matmul, OpenVINO's MatMul (inference "
            "precision = dtype) and (fp32) ONNX Runtime's MatMul on the CPU provider, each with as many threads"
        )
        return PeakMatmul(device, dtype, size, reps, torch.get_num_threads(), flops / best / 1e9, method, by_library)
    return PeakMatmul(
        device=device,
        dtype=dtype,
        n=size,
        reps=reps,
        threads=torch.get_num_threads(),
        gflops_per_s=flops / best / 1e9,
        method=method,
    )


def _int8_peak(device: str, size: int, reps: int) -> PeakMatmul:
    """The int8 ceiling (VNNI / AMX on the CPU): ``torch._int_mm``, int8 x int8 -> int32."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(0)
    a, b = (torch.randint(-128, 128, (size, size), generator=gen, dtype=torch.int8).to(device) for _ in range(2))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = _best_seconds(lambda: (torch._int_mm(a, b), sync()), reps)
    method = "best of perf_counter-timed runs after one warm-up of torch._int_mm (int8 x int8 -> int32)"
    flops = 2.0 * size**3
    return PeakMatmul(device, "int8", size, reps, torch.get_num_threads(), flops / best / 1e9, method)


def _best_seconds(fn: Callable[[], object], reps: int) -> float:
    """Fastest of ``reps`` perf_counter-timed calls, after one untimed warm-up call."""
    fn()  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _openvino_matmul_seconds(a: np.ndarray, b: np.ndarray, reps: int, threads: int, dtype: str) -> float | None:
    """The product as a one-MatMul OpenVINO model on the CPU, f32 inputs computed in ``dtype``
    (OpenVINO converts to bf16 inside); None without openvino or without that precision."""
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError:
        return None
    hint = {"fp32": "f32", "bf16": "bf16"}.get(dtype)
    core = ov.Core()
    if hint is None or (hint == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")):
        return None
    x = ops.parameter(list(a.shape), ov.Type.f32)
    y = ops.parameter(list(b.shape), ov.Type.f32)
    model = ov.Model([ops.matmul(x, y, False, False)], [x, y], "peak_matmul")
    config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    request = core.compile_model(model, "CPU", config).create_infer_request()
    return _best_seconds(lambda: request.infer([a, b], share_inputs=True, share_outputs=True), reps)


def _onnxruntime_matmul_seconds(a: np.ndarray, b: np.ndarray, reps: int, threads: int) -> float | None:
    """The same product as a one-node ONNX graph on ONNX Runtime's CPU provider; None without onnxruntime."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    n = a.shape[0]
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b")]
    output = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak_matmul", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9  # read by every onnxruntime this project supports
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {"a": a, "b": b}
    return _best_seconds(lambda: session.run(None, feeds), reps)
