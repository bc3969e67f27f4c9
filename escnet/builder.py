"""``build_model``: a preset, optionally with pretrained CLIP and SAM weights."""

from __future__ import annotations

import logging
from pathlib import Path

from .modeling.model import ESCNet
from .presets import get_config
from .weights import load_clip_weights, load_sam_weights

log = logging.getLogger("escnet")


def build_model(
    preset: str = "vit-b16",
    clip_weights: str | Path | None = None,
    sam_weights: str | Path | None = None,
) -> ESCNet:
    """Build ESC-Net from a preset ("vit-b16", "vit-l14", "tiny").

    clip_weights: an open_clip/OpenAI state-dict file or an open_clip pretrained tag.
    sam_weights: the official SAM checkpoint (e.g. sam_vit_b_01ec64.pth).
    Parts with no weights given stay randomly initialised, and one log line says so.
    """
    model = ESCNet(get_config(preset))
    if clip_weights is not None:
        load_clip_weights(model, clip_weights)
    if sam_weights is not None:
        load_sam_weights(model, sam_weights)
    random = [name for name, w in (("CLIP", clip_weights), ("SAM", sam_weights)) if w is None]
    if random:
        log.warning(
            "escnet: preset %r: no %s weights given, those parts are randomly initialised", preset, " or ".join(random)
        )
    return model.eval()
