"""ESC-Net checkpoints: safetensors with the config and a format version, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import config_from_dict, config_to_dict
from .errors import CheckpointError
from .io_utils import atomic_path
from .modeling.model import ESCNet
from .state_dict import load_strict

FORMAT = "escnet"
FORMAT_VERSION = 1


def save_checkpoint(model: ESCNet, path: str | Path) -> Path:
    """Write the weights, config and format version to ``path`` (.safetensors), atomically."""
    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(config_to_dict(model.config)),
        "torch": torch.__version__,
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def read_checkpoint_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint (truncated or corrupt?): "
            f"{str(e).splitlines()[0][:160] if str(e) else type(e).__name__}"
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an ESC-Net checkpoint (metadata format {meta.get('format')!r})")
    version = int(meta.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this escnet "
            f"supports ({FORMAT_VERSION}); upgrade escnet"
        )
    return meta


def load_checkpoint(path: str | Path, preset: str | None = None, map_location: str = "cpu") -> ESCNet:
    """Build the model the checkpoint describes and load it strictly.

    ``preset``: when given, the checkpoint must be of that preset.
    """
    from safetensors.torch import load_file

    meta = read_checkpoint_metadata(path)
    try:
        config = config_from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: checkpoint config is unreadable: {e}") from None
    if preset is not None and config.preset != preset:
        raise CheckpointError(f"{path}: checkpoint is for preset {config.preset!r}, expected {preset!r}")
    try:
        state = load_file(str(path), device=map_location)
    except Exception as e:
        raise CheckpointError(
            f"{path}: tensors cannot be read (truncated or corrupt?): "
            f"{str(e).splitlines()[0][:160] if str(e) else type(e).__name__}"
        ) from None
    model = ESCNet(config)
    load_strict(model, state, f"checkpoint {path}")
    return model.eval()
