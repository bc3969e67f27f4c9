"""Write a run's files atomically: the validated JSON, the Markdown summary and the plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from escnet_runtime.fileio import write_bytes_atomic

from .plots import write_plots
from .report import markdown_summary
from .schema import SCHEMA_FILE, load_schema, validate_result

RESULTS_JSON = "results.json"
SUMMARY_MD = "summary.md"


def write_outputs(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Validate ``data`` against the schema, then write every output file; return their paths.

    Each file is written to a temporary name and renamed, so an interrupted run never leaves a
    file that looks complete. The schema is copied beside the results so the folder is
    self-describing.
    """
    validate_result(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / RESULTS_JSON, out_dir / SUMMARY_MD, out_dir / SCHEMA_FILE]
    write_bytes_atomic(paths[0], (json.dumps(data, indent=2, allow_nan=False) + "\n").encode())
    write_bytes_atomic(paths[1], (markdown_summary(data) + "\n").encode())
    write_bytes_atomic(paths[2], (json.dumps(load_schema(), indent=2) + "\n").encode())
    return paths + write_plots(data, out_dir)
