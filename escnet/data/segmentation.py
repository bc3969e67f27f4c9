"""Reading a prepared semantic-segmentation split: images paired with label maps, checked.

Every failure is a :class:`DatasetError` whose one line names the file at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError
from .specs import DatasetSpec, spec_class_names, spec_prompt_names

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Sample:
    """One image and its label map."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    label: np.ndarray  # (H, W) int64; class index, or the set's ignore index
    name: str  # file stem


def resolve_root(root: str | Path, spec: DatasetSpec) -> Path:
    """The folder the spec's paths are relative to: ``root/subdir``, or ``root`` itself when it
    already is the data set's folder (holds the image folder)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: data root not found (expected a folder)")
    if spec.subdir and (root / spec.subdir).is_dir():
        return root / spec.subdir
    if (root / spec.image_dir).is_dir():
        return root
    where = f"{root / spec.subdir} or {root}" if spec.subdir else str(root)
    raise DatasetError(f"{where}: no {spec.image_dir}/ folder; expected the {spec.description} prepared layout")


def read_image(path: Path) -> np.ndarray:
    """An RGB image file -> (H, W, 3) uint8."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{path}: unreadable image ({e})") from None


def read_label(path: Path) -> np.ndarray:
    """A single-channel label file (8-bit PNG or 16-bit TIFF) -> (H, W) int64."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                raise DatasetError(f"{path}: label map has mode {im.mode}; expected one channel (8 or 16 bit)")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise DatasetError(f"{path}: label file not found") from None
    except DatasetError:
        raise
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: unreadable label map ({e})") from None
    if arr.ndim != 2:
        raise DatasetError(f"{path}: label map has shape {arr.shape}; expected (H, W)")
    return arr.astype(np.int64)


class SegmentationDataset:
    """A prepared split: the label files of ``label_dir``, each with the image of the same stem.

    ``dataset[i]`` -> :class:`Sample`, checked: sizes agree, every label value is a class index
    in ``[0, num_classes)`` or an ignore value (mapped to ``ignore_index``).
    """

    def __init__(self, root: str | Path, spec: DatasetSpec, limit: int | None = None) -> None:
        self.spec = spec
        self.root = resolve_root(root, spec)
        self.class_names = spec_class_names(spec, self.root)
        self.prompt_names = spec_prompt_names(spec, self.root)
        self.ignore_index = spec.ignore_index
        image_dir, label_dir = self.root / spec.image_dir, self.root / spec.label_dir
        if not label_dir.is_dir():
            raise DatasetError(f"{label_dir}: label folder not found; expected the {spec.description} layout")
        labels = sorted(p for p in label_dir.iterdir() if p.suffix.lower() == spec.label_ext)
        if not labels:
            raise DatasetError(f"{label_dir}: no {spec.label_ext} label files")
        if limit is not None:
            if limit < 1:
                raise DatasetError(f"limit must be >= 1, got {limit}")
            labels = labels[:limit]
        images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
        self.items: list[tuple[Path, Path]] = []
        for label in labels:
            image = images.get(label.stem)
            if image is None:
                raise DatasetError(f"{label}: no image {label.stem}{{{','.join(IMAGE_EXTS)}}} in {image_dir}")
            self.items.append((image, label))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_path, label_path = self.items[index]
        image = read_image(image_path)
        label = read_label(label_path)
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f"{label_path}: label size {label.shape[1]}x{label.shape[0]} differs from its image "
                f"{image_path.name} ({image.shape[1]}x{image.shape[0]})"
            )
        ignored = np.isin(label, self.spec.ignore_values)
        bad = ~ignored & ((label < 0) | (label >= self.num_classes))
        if bad.any():
            values = np.unique(label[bad])
            raise DatasetError(
                f"{label_path}: label values {values[:5].tolist()} outside the {self.num_classes} classes "
                f"(valid: 0..{self.num_classes - 1}, ignore: {list(self.spec.ignore_values)})"
            )
        label = np.where(ignored, self.ignore_index, label)
        return Sample(image, label, label_path.stem)


def open_dataset(name: str, root: str | Path, limit: int | None = None) -> SegmentationDataset:
    """A known data set (``ade150``, ``voc20b``, ``synthetic``...) at ``root``."""
    from .specs import get_spec

    return SegmentationDataset(root, get_spec(name), limit)
