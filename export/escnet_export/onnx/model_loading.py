"""Building or loading the model to export, with user mistakes as one-line ExportErrors."""

from __future__ import annotations

from pathlib import Path

import torch

from escnet import PRESETS, CheckpointError, ESCNet, build_model, load_checkpoint
from escnet_export.errors import ExportError


def check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ExportError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")


def load_model(
    preset: str, checkpoint: Path | None, clip_weights: str | None, sam_weights: str | None, seed: int = 0
) -> ESCNet:
    """A checkpoint (its preset must be ``preset``), or the preset with optional CLIP/SAM weights.

    Parts with no weights are initialised from ``torch.manual_seed(seed)``, so a random-init
    export can be rebuilt exactly (escnet-bench does, from the seed in the manifest).
    """
    check_preset(preset)
    try:
        if checkpoint is not None:
            model = load_checkpoint(checkpoint, preset=preset)
        else:
            torch.manual_seed(seed)
            model = build_model(preset, clip_weights=clip_weights, sam_weights=sam_weights)
    except CheckpointError as e:
        raise ExportError(str(e)) from None
    return model.eval()
