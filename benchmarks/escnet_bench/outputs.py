"""Write a run's files atomically: the validated JSON, the Markdown summary and the plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from escnet_runtime.fileio import atomic_path, write_bytes_atomic

from escnet_bench.plots import write_plots
from escnet_bench.report import markdown_summary
from escnet_bench.schema import SCHEMA_FILE, load_schema, validate_result

RESULTS_JSON = "results.json"
SUMMARY_MD = "summary.md"
SAMPLE_PNG = "sample.png"  # the first benchmark input, e.g. for ``escnet-segment bench-results/sample.png``


def write_sample_image(image: np.ndarray, path: Path) -> Path:
    """Write one (H, W, 3) uint8 input as a PNG, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def write_outputs(data: dict[str, Any], out_dir: Path, sample: np.ndarray | None = None) -> list[Path]:
    """Validate ``data`` against the schema, then write every output file; return their paths.

    Each file is written to a temporary name and renamed, so an interrupted run never leaves a
    file that looks complete. The schema is copied beside the results so the folder is
    self-describing; ``sample`` (one input image) is saved as ``sample.png``.
    """
    validate_result(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / RESULTS_JSON, out_dir / SUMMARY_MD, out_dir / SCHEMA_FILE]
    write_bytes_atomic(paths[0], (json.dumps(data, indent=2, allow_nan=False) + "\n").encode())
    write_bytes_atomic(paths[1], (markdown_summary(data) + "\n").encode())
    write_bytes_atomic(paths[2], (json.dumps(load_schema(), indent=2) + "\n").encode())
    if sample is not None:
        paths.append(write_sample_image(sample, out_dir / SAMPLE_PNG))
    return paths + write_plots(data, out_dir)
