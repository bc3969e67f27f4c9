"""The inputs every backend sees: seeded synthetic images and class names.

Images are smooth, structured uint8 RGB pictures (a few blurred colour blobs over a gradient),
not white noise, so that the label maps have regions; they are deliberately not S x S, so the
resize of the pre-processing is part of what is timed and compared. Class names are the first
T names of ADE20K-847 (the package's shipped class list: real names, so the tokenizer sees
realistic lengths), then distinct synthetic names ("object 847", ...) beyond 847.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_HEIGHT = 480
IMAGE_WIDTH = 640


@dataclass(frozen=True)
class BenchInputs:
    """``images``: (B, H, W, 3) uint8; ``names``: T class names."""

    images: np.ndarray
    names: list[str]

    @property
    def batch(self) -> int:
        return int(self.images.shape[0])

    @property
    def classes(self) -> int:
        return len(self.names)


VOCABULARY_FILE = "classes_ade847.txt"


def class_names(count: int) -> list[str]:
    """``count`` distinct class names, the same for every backend and every run."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    from escnet.data.specs import packaged_class_names

    real = packaged_class_names(VOCABULARY_FILE)[:count]
    return real + [f"object {i}" for i in range(len(real), count)]


def synthetic_images(batch: int, seed: int = 0, height: int = IMAGE_HEIGHT, width: int = IMAGE_WIDTH) -> np.ndarray:
    """(batch, height, width, 3) uint8: seeded colour blobs over a gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((batch, height, width, 3), dtype=np.uint8)
    for i in range(batch):
        img = np.stack([xx / width, yy / height, 1.0 - xx / width], axis=-1) * 0.3  # (H, W, 3)
        for _ in range(6):
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            radius = rng.uniform(0.08, 0.3) * min(height, width)
            colour = rng.uniform(0, 1, size=3).astype(np.float32)
            weight = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))[..., None]
            img = img * (1 - weight) + colour * weight
        noise = rng.normal(0, 0.02, size=img.shape).astype(np.float32)
        out[i] = np.clip((img + noise) * 255.0, 0, 255).astype(np.uint8)
    return out


def make_inputs(classes: int, batch: int, seed: int = 0) -> BenchInputs:
    """The inputs for one (classes, batch) point."""
    return BenchInputs(images=synthetic_images(batch, seed), names=class_names(classes))
