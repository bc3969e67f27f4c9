"""The training data stream: a function of (seed, step), so a resumed run sees the same batches.

Sample ``j`` of the global batch of step ``s`` is position ``p = s * B + j`` of an endless
stream; its epoch ``p // N`` fixes a permutation of the N images (seeded by (seed, epoch)),
and its augmentation is seeded by (seed, s, j). Process ``r`` of ``R`` takes ``j = r, r+R, ...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.errors import DatasetError
from ..data.segmentation import SegmentationDataset
from ..data.specs import CLASSES_FILE, DatasetSpec, get_spec, synthetic_spec
from ..data.transforms import AugmentConfig, augment


def training_specs(data: Path, dataset: str) -> tuple[DatasetSpec, DatasetSpec | None]:
    """The training split and, when present, a validation split of the data at ``data``."""
    if not data.is_dir():
        raise DatasetError(f"{data}: data root not found (expected a folder)")
    if dataset == "coco171" or (dataset == "auto" and (data / "coco-stuff").is_dir()):
        val = get_spec("coco171-val")
        val_dir = data / "coco-stuff" / val.label_dir if (data / "coco-stuff").is_dir() else data / val.label_dir
        return get_spec("coco171"), val if val_dir.is_dir() else None
    if dataset == "synthetic" or (data / CLASSES_FILE).is_file():
        val = synthetic_spec("val")
        return synthetic_spec("train"), val if (data / val.label_dir).is_dir() else None
    raise DatasetError(
        f"{data}: neither a COCO-Stuff prepared layout (coco-stuff/) nor a synthetic / custom set ({CLASSES_FILE})"
    )


class AugmentedSet(Dataset):
    """Indexed by (image index, step, slot) -> image (3, S, S) float32, label (S, S) int64."""

    def __init__(self, data: SegmentationDataset, augment_config: AugmentConfig, seed: int) -> None:
        self.data = data
        self.augment_config = augment_config
        self.seed = seed

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, step, slot = key
        rng = np.random.default_rng([self.seed, step, slot])
        return augment(self.data[index], self.augment_config, rng, self.data.ignore_index)


class StepBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """Yields this process's share of the global batch for steps ``start .. total - 1``."""

    def __init__(
        self, num_images: int, batch_size: int, seed: int, start: int, total: int, rank: int, world: int
    ) -> None:
        self.n, self.batch, self.seed = num_images, batch_size, seed
        self.start, self.total, self.rank, self.world = start, total, rank, world
        self._perms: dict[int, np.ndarray] = {}

    def _index(self, position: int) -> int:
        epoch = position // self.n
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, 1_000_003, epoch]).permutation(self.n)}
        return int(self._perms[epoch][position % self.n])

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for step in range(self.start, self.total):
            yield [(self._index(step * self.batch + j), step, j) for j in range(self.rank, self.batch, self.world)]

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def training_loader(
    data: SegmentationDataset,
    augment_config: AugmentConfig,
    batch_size: int,
    seed: int,
    start: int,
    total: int,
    rank: int = 0,
    world: int = 1,
    num_workers: int = 0,
) -> DataLoader:
    """Batches (B / world, 3, S, S) images and (B / world, S, S) labels, one per step."""
    sampler = StepBatchSampler(len(data), batch_size, seed, start, total, rank, world)
    return DataLoader(
        AugmentedSet(data, augment_config, seed),
        batch_sampler=sampler,
        num_workers=num_workers,
        persistent_workers=False,
    )
