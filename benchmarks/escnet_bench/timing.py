"""Timed runs of a zero-argument callable: warm-up first, then wall-clock or CUDA-event timing.

GPU work is asynchronous: a wall clock around a launch measures the launch, not the work. On a
CUDA device each run is bracketed by CUDA events and the device is synchronised before the
elapsed time is read; on the CPU a ``perf_counter`` pair is used, after the backend's own sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimedRuns:
    """Seconds per timed run, the output of the last run, and the first warm-up's seconds."""

    seconds: list[float]
    first_call_s: float | None  # the first warm-up (includes lazy initialisation, compile, autotune)
    last_output: Any


def _cuda_events() -> tuple[Any, Any] | None:
    try:
        import torch
    except ImportError:  # the torch-free runtime may be benchmarked without torch on the path
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)


def time_runs(
    fn: Callable[[], Any],
    warmup: int,
    iters: int,
    sync: Callable[[], None] = lambda: None,
    cuda_events: bool = False,
    before: Callable[[], None] | None = None,
    budget_s: float | None = None,
    min_iters: int = 1,
) -> TimedRuns:
    """Run ``fn`` ``warmup`` times untimed, then ``iters`` times timed.

    ``budget_s``: stop early once the timed runs add up to this many seconds, after at least
    ``min_iters`` runs (an automatic count: many runs of a fast call, few of a slow one).

    ``sync`` waits for the backend's outstanding work (e.g. ``torch.cuda.synchronize``).
    ``cuda_events``: time each run with CUDA events on the current stream (GPU backends).
    ``before``: untimed set-up before every run (e.g. emptying a cache for a cold-cache figure).
    """
    setup = before or (lambda: None)
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    first: float | None = None
    out: Any = None
    for i in range(warmup):
        setup()
        start = time.perf_counter()
        out = fn()
        sync()
        if i == 0:
            first = time.perf_counter() - start
    events = _cuda_events() if cuda_events else None
    seconds: list[float] = []
    for _ in range(iters):
        if budget_s is not None and len(seconds) >= min_iters and sum(seconds) >= budget_s:
            break
        setup()
        if events is not None:
            begin, end = events
            sync()
            begin.record()
            out = fn()
            end.record()
            end.synchronize()
            sync()
            seconds.append(begin.elapsed_time(end) / 1e3)
        else:
            sync()
            start = time.perf_counter()
            out = fn()
            sync()
            seconds.append(time.perf_counter() - start)
    return TimedRuns(seconds=seconds, first_call_s=first, last_output=out)
