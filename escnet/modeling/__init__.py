"""ESC-Net's modules (as segment-anything separates ``modeling/`` from its utilities): the model
and its parts. Weight I/O, FLOP counts, presets and the CLI live one level up, in ``escnet``."""

from .model import CLIP_MEAN, CLIP_STD, BlockInput, BlockOutput, ESCNet, ImageFeatures

__all__ = ["CLIP_MEAN", "CLIP_STD", "BlockInput", "BlockOutput", "ESCNet", "ImageFeatures"]
