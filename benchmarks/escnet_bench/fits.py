"""Scaling fits over a run's rows: latency and memory against classes (per batch) and batch (per T)."""

from __future__ import annotations

from collections import defaultdict

from escnet_bench.results import BenchResult, FitRecord
from escnet_bench.scaling import fit_linear

FIT_STAGES = ("end_to_end", "decoder", "text_cold")
MEMORY_METRICS = ("process_peak_rss_mib", "delta_rss_mib", "peak_rss_mib", "peak_device_mib")


def _fits_over(
    rows: dict[tuple[str, str, str, int], list[tuple[int, float]]], variable: str, fixed_name: str, predict_at: int
) -> list[FitRecord]:
    out = []
    for (backend, stage, metric, fixed), pts in sorted(rows.items()):
        xs = [x for x, _ in pts]
        if len(set(xs)) < 2:
            continue
        fit = fit_linear(xs, [y for _, y in pts])
        out.append(
            FitRecord(
                backend, stage, metric, variable, {fixed_name: fixed}, fit, {str(predict_at): fit.predict(predict_at)}
            )
        )
    return out


def scaling_fits(result: BenchResult, predict_classes: int) -> list[FitRecord]:
    """``y = a + b * classes`` for each backend, stage and batch size (latency in ms, memory in MiB),
    predicted at ``predict_classes``; and ``y = a + b * batch`` for end-to-end latency per class count,
    predicted at twice the largest batch measured."""
    by_classes: dict[tuple[str, str, str, int], list[tuple[int, float]]] = defaultdict(list)
    by_batch: dict[tuple[str, str, str, int], list[tuple[int, float]]] = defaultdict(list)
    for t in result.timings:
        if t.stage in FIT_STAGES:
            by_classes[(t.backend, t.stage, "median_ms", t.batch)].append((t.classes, t.timing.median_ms))
        if t.stage == "end_to_end":
            by_batch[(t.backend, t.stage, "median_ms", t.classes)].append((t.batch, t.timing.median_ms))
    for m in result.memory:
        for metric in MEMORY_METRICS:
            value = m.process_peak_rss_mib if metric == "process_peak_rss_mib" else getattr(m.reading, metric)
            if value is not None:
                by_classes[(m.backend, m.stage, metric, m.batch)].append((m.classes, value))
    max_batch = max((x for pts in by_batch.values() for x, _ in pts), default=1)
    return _fits_over(by_classes, "classes", "batch", predict_classes) + _fits_over(
        by_batch, "batch", "classes", 2 * max_batch
    )
