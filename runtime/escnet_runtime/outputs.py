"""What ``escnet-segment`` writes per image: label PNG, overlay PNG, JSON of class shares.

All three are encoded in memory first, then written to temporary files beside their targets,
and only when all three are complete are they renamed into place: a full disk or an unwritable
folder leaves no half-written file and no partial set (the temporaries are removed), and the
error names the file. Files get the umask's permissions.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from escnet_runtime.errors import OutputError
from escnet_runtime.fileio import file_mode
from escnet_runtime.render import label_image, overlay_image
from escnet_runtime.segmenter import SegmentResult


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
    write_all_or_nothing(blobs)
    return paths.all()


def _write_temporary(path: Path, data: bytes, mode: int) -> Path:
    """``data`` in a new temporary file beside ``path`` (removed again if writing fails)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def write_all_or_nothing(blobs: dict[Path, bytes]) -> None:
    """Write every file or none: all to temporaries first, then rename each onto its target.

    Raises OutputError (one line, naming the file) after removing the temporaries and any target
    already renamed in this call.
    """
    mode = file_mode()
    staged: dict[Path, Path] = {}
    done: list[Path] = []
    current = next(iter(blobs))
    try:
        for current, data in blobs.items():
            staged[current] = _write_temporary(current, data, mode)
        for current, tmp in staged.items():
            os.replace(tmp, current)
            done.append(current)
    except BaseException as e:
        for path in [*staged.values(), *done]:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if isinstance(e, OSError):
            why = e.strerror or type(e).__name__
            raise OutputError(f"{current}: cannot write it ({why}); no outputs kept for this image") from None
        raise
