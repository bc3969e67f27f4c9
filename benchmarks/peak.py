"""This machine's measured peak matmul throughput, the yardstick for utilisation figures.

A large square matmul is the friendliest workload a device has: its GFLOP/s is a practical
ceiling (below the datasheet figure) for what any backend can reach on the same device.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_peak_matmul(device: str = "cpu", dtype: str = "fp32", n: int | None = None, reps: int = 5) -> PeakMatmul:
    """Measure the peak matmul GFLOP/s with torch on ``device`` ("cpu" or "cuda") in ``dtype``.

    ``n`` defaults to 2048 on the CPU (about 17 GFLOP per product) and 8192 on a GPU. TF32 is
    disabled for fp32 on the GPU so that the figure is a true fp32 ceiling.
    """
    import torch

    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    size = n or (2048 if device == "cpu" else 8192)
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
        torch.matmul(a, b)  # warm-up: thread pool start, page faults
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t0)
        method = "best of perf_counter-timed torch.matmul runs after one warm-up"
    return PeakMatmul(
        device=device,
        dtype=dtype,
        n=size,
        reps=reps,
        threads=torch.get_num_threads(),
        gflops_per_s=flops / best / 1e9,
        method=method,
    )
