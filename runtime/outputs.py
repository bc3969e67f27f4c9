"""What ``escnet-segment`` writes per image: label PNG, overlay PNG, JSON of class shares.

All three are encoded in memory first, then each is written atomically (temporary file beside
it, then rename), so an error or an interrupt never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .fileio import write_bytes_atomic
from .render import label_image, overlay_image
from .segmenter import SegmentResult


@dataclass(frozen=True)
class OutputPaths:
    labels: Path
    overlay: Path
    shares: Path

    @staticmethod
    def for_image(out_dir: Path, image: Path) -> OutputPaths:
        stem = image.stem
        return OutputPaths(out_dir / f"{stem}.labels.png", out_dir / f"{stem}.overlay.png", out_dir / f"{stem}.json")

    def all(self) -> tuple[Path, Path, Path]:
        return (self.labels, self.overlay, self.shares)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def write_outputs(
    paths: OutputPaths, image: np.ndarray, result: SegmentResult, meta: dict[str, Any]
) -> tuple[Path, Path, Path]:
    """Encode all three files, then write them; returns their paths."""
    names = result.class_names
    record = {
        **meta,
        "height": int(result.labels.shape[0]),
        "width": int(result.labels.shape[1]),
        "classes": list(names),
        "label_png": paths.labels.name,
        "shares": result.shares(),
    }
    blobs = {
        paths.labels: _png(label_image(result.labels, len(names))),
        paths.overlay: _png(overlay_image(image, result.labels, names)),
        paths.shares: (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
    }
    for path, data in blobs.items():
        write_bytes_atomic(path, data)
    return paths.all()
