"""What ``escnet-segment`` was asked to segment, and the lines it prints about what it did.

Arguments may be image files, folders (their image files, sorted; not recursive), glob
patterns (``"photos/*.jpg"``, expanded here so they work unquoted and quoted alike) and ``-``
(paths read from stdin, one per line).
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

from escnet_runtime.errors import InputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
_GLOB_CHARS = frozenset("*?[")


def _folder_images(folder: Path) -> list[Path]:
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"{folder}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def expand_images(args: Iterable[Path | str], stdin: TextIO | None = None) -> list[Path]:
    """Image paths in the order given, duplicates dropped; one-line InputError for an empty folder or glob."""
    found: list[Path] = []
    for arg in args:
        text = str(arg)
        if text == "-":
            lines = (stdin or sys.stdin).read().splitlines()
            found += [Path(line.strip()) for line in lines if line.strip()]
        elif Path(text).is_dir():
            found += _folder_images(Path(text))
        elif not Path(text).exists() and _GLOB_CHARS & set(text):
            matches = sorted(Path(m) for m in glob.glob(text) if Path(m).is_file())
            if not matches:
                raise InputError(f"{text}: no files match this pattern")
            found += matches
        else:
            found.append(Path(text))  # a file, or a missing path the preflight reports
    return list(dict.fromkeys(found))


def top_classes(shares: Mapping[str, float], top: int = 3) -> str:
    """ "wall 42.1%, floor 30.0%, sky 12.5%": the largest shares, largest first (absent classes left out)."""
    ranked = sorted(((v, k) for k, v in shares.items() if v > 0), key=lambda x: (-x[0], x[1]))[:top]
    return ", ".join(f"{name} {100 * share:.1f}%" for share, name in ranked)


def image_line(image: Path, outputs: Iterable[Path], shares: Mapping[str, float]) -> str:
    """One line per segmented image: where its outputs went and its top classes."""
    return f"{image} -> {', '.join(str(p) for p in outputs)}: {top_classes(shares)}"


def summary_line(done: int, failed: int, seconds: float, out: Path) -> str:
    per = f" ({seconds / done:.2f} s per image)" if done else ""
    failures = f"; {failed} failed (see the errors above)" if failed else ""
    return f"segmented {done} image{'s' if done != 1 else ''} in {seconds:.1f} s{per} into {out}{failures}"
