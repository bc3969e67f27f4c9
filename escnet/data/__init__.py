"""escnet.data: prepared segmentation layouts (COCO-Stuff, ADE20K, PASCAL), class lists, the
synthetic set, and training augmentation."""

from .errors import DatasetError
from .segmentation import Sample, SegmentationDataset, open_dataset
from .specs import IGNORE_INDEX, SPECS, DatasetSpec, get_spec, synthetic_spec
from .synthetic import SyntheticConfig, generate

__all__ = [
    "IGNORE_INDEX",
    "SPECS",
    "DatasetError",
    "DatasetSpec",
    "Sample",
    "SegmentationDataset",
    "SyntheticConfig",
    "generate",
    "get_spec",
    "open_dataset",
    "synthetic_spec",
]
