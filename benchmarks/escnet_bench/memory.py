"""Peak memory of one measurement: process RSS high-water on the CPU, device memory on a GPU.

CPU method (Linux): before a measurement, garbage is collected, freed heap pages are handed back
to the OS (glibc ``malloc_trim``) and the kernel's RSS high-water mark ``VmHWM`` is reset by
writing ``5`` to ``/proc/self/clear_refs``. After it, ``VmHWM`` is the highest resident size
the process reached during the measurement. Reported: that absolute peak, the RSS right before
(the baseline: interpreter, libraries and every model loaded so far) and the difference (the
measurement's own working memory). Where the reset is not possible the method says so and the
peak is the process lifetime high-water (an upper bound).

GPU method: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` for PyTorch
backends; for other libraries (ONNX Runtime, TensorRT), whose allocations torch cannot see, the
device's used memory is sampled every few milliseconds with ``torch.cuda.mem_get_info``.
"""

from __future__ import annotations

import gc
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 1024 * 1024


@dataclass(frozen=True)
class MemoryReading:
    """Peak memory of one measurement, in MiB; ``None`` where not measurable."""

    method: str
    baseline_rss_mib: float | None
    peak_rss_mib: float | None
    delta_rss_mib: float | None
    peak_device_mib: float | None = None
    device_method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status_kib(field: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def current_rss_mib() -> float | None:
    """Resident set size now, in MiB (None off Linux)."""
    kib = _status_kib("VmRSS")
    return kib / 1024 if kib is not None else None


def rss_peak_mib() -> float | None:
    """The RSS high-water mark (since the last reset), in MiB (None off Linux)."""
    kib = _status_kib("VmHWM")
    return kib / 1024 if kib is not None else None


def release_free_memory() -> None:
    """Collect garbage and return freed heap pages to the OS, so the next baseline is honest."""
    from escnet_runtime.heap import trim_heap  # here, not at the top: the RSS readers stay free of imports

    gc.collect()
    trim_heap()


def reset_rss_peak() -> bool:
    """Reset the kernel's RSS high-water mark; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class _DeviceSampler:
    """Samples the device's used memory in a background thread (for non-torch GPU libraries)."""

    def __init__(self, interval_s: float = 0.005) -> None:
        import torch

        self._torch = torch
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak_bytes = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _used(self) -> int:
        free, total = self._torch.cuda.mem_get_info()
        return total - free

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._used())
            self._stop.wait(self._interval)

    def __enter__(self) -> _DeviceSampler:
        self.peak_bytes = self._used()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._used())


class MemoryProbe:
    """Context manager measuring the peak memory of the code inside it.

    ``device``: "cpu" (RSS only), "cuda-torch" (torch allocator peak) or "cuda-sampled"
    (device-wide used memory, sampled). Read :attr:`reading` after the block.
    """

    METHOD_DOC = (
        "CPU: in-process; before each end-to-end measurement gc + malloc_trim, then the kernel's RSS high-water "
        "(VmHWM) is reset via /proc/self/clear_refs; peak_rss_mib is the process high-water during the measurement "
        "(includes the interpreter, libraries and the PyTorch reference model), baseline_rss_mib the RSS right "
        "before it, delta_rss_mib their difference (the measurement's own working memory). GPU: "
        "torch.cuda.max_memory_allocated for PyTorch backends, device used memory sampled every 5 ms otherwise."
    )

    def __init__(self, device: str = "cpu") -> None:
        if device not in ("cpu", "cuda-torch", "cuda-sampled"):
            raise ValueError(f"unknown memory device {device!r}")
        self.device = device
        self.reading: MemoryReading | None = None
        self._reset_ok = False
        self._baseline: float | None = None
        self._sampler: _DeviceSampler | None = None

    def __enter__(self) -> MemoryProbe:
        release_free_memory()
        self._baseline = current_rss_mib()
        self._reset_ok = reset_rss_peak()
        if self.device == "cuda-torch":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        elif self.device == "cuda-sampled":
            self._sampler = _DeviceSampler().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        peak_kib = _status_kib("VmHWM")
        peak = peak_kib / 1024 if peak_kib is not None else None
        method = (
            "in-process VmHWM reset per measurement (gc + malloc_trim first)"
            if self._reset_ok
            else "process lifetime VmHWM (reset not permitted): an upper bound"
        )
        device_peak = device_method = None
        if self.device == "cuda-torch":
            import torch

            torch.cuda.synchronize()
            device_peak = torch.cuda.max_memory_allocated() / MIB
            device_method = "torch.cuda.max_memory_allocated"
        elif self._sampler is not None:
            self._sampler.__exit__(*exc)
            device_peak = self._sampler.peak_bytes / MIB
            device_method = "device used memory sampled every 5 ms (torch.cuda.mem_get_info)"
        delta = peak - self._baseline if peak is not None and self._baseline is not None else None
        self.reading = MemoryReading(
            method=method,
            baseline_rss_mib=self._baseline,
            peak_rss_mib=peak,
            delta_rss_mib=max(delta, 0.0) if delta is not None else None,
            peak_device_mib=device_peak,
            device_method=device_method,
        )
