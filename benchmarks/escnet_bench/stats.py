"""Timing statistics: median, p90, p99 and throughput from a list of timed runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TimingStats:
    """Summary of ``runs`` timed repetitions (warm-up runs excluded), in milliseconds.

    ``throughput`` is ``items / median`` per second, where an item is what the graph consumes
    (images for the image encoder, decoder and end to end; class names for the text encoder).
    With few runs the tail percentiles are interpolated between the slowest runs: read p99
    together with ``runs``.
    """

    runs: int
    warmup: int
    items: int
    item_unit: str
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    stdev_ms: float
    throughput: float  # items per second at the median

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(seconds: Sequence[float], warmup: int, items: int, item_unit: str) -> TimingStats:
    """Summarise timed runs given in seconds; ``items`` per run (batch size or class count)."""
    if not seconds:
        raise ValueError("no timed runs to summarise")
    if items < 1:
        raise ValueError(f"items must be >= 1, got {items}")
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    median = float(np.median(ms))
    return TimingStats(
        runs=len(ms),
        warmup=warmup,
        items=items,
        item_unit=item_unit,
        median_ms=median,
        mean_ms=float(ms.mean()),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        stdev_ms=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        throughput=items / (median / 1e3) if median > 0 else float("inf"),
    )
