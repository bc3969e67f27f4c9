"""PNG plots of a run: latency and memory against the number of classes, one line per backend."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from escnet_runtime.fileio import atomic_path

LATENCY_PNG = "latency_vs_classes.png"
MEMORY_PNG = "memory_vs_classes.png"


def _series(rows: list[dict[str, Any]], value: str) -> dict[str, list[tuple[int, float]]]:
    """backend (and batch, where several) -> sorted (classes, value) points."""
    batches = {r["batch"] for r in rows}
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        y = r[value] if value in r else r["timing"][value]
        if y is None:
            continue
        label = r["backend"] if len(batches) == 1 else f"{r['backend']} B={r['batch']}"
        out[label].append((r["classes"], y))
    return {k: sorted(v) for k, v in sorted(out.items())}


def _plot(panels: list[tuple[dict[str, list[tuple[int, float]]], str, str]], path: Path) -> Path | None:
    """One PNG with a panel per (series, title, y label); panels without data are left out."""
    panels = [p for p in panels if p[0]]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (series, title, ylabel) in zip(axes[0], panels, strict=True):
        for label, pts in series.items():
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
        ax.set_xlabel("classes (T)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_plots(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the latency and memory plots into ``out_dir``; return the paths written."""
    preset = data["options"]["preset"]
    e2e = [t for t in data["timings"] if t["stage"] == "end_to_end"]
    memory = [m for m in data["memory"] if m["stage"] == "end_to_end"]
    latency = [(_series(e2e, "median_ms"), f"{preset}: end-to-end latency", "median latency (ms)")]
    mem_panels = [
        (_series(memory, "process_peak_rss_mib"), f"{preset}: peak RSS, fresh process", "MiB"),
        (_series(memory, "delta_rss_mib"), f"{preset}: in-process peak RSS over baseline", "MiB"),
        (_series(memory, "peak_device_mib"), f"{preset}: peak device memory", "MiB"),
    ]
    written = [_plot(latency, out_dir / LATENCY_PNG), _plot(mem_panels, out_dir / MEMORY_PNG)]
    return [p for p in written if p is not None]
