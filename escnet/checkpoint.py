"""ESC-Net checkpoints: safetensors with the config and a format version, written atomically."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import ESCNetConfig, config_to_dict
from .config_check import config_from_dict
from .errors import CheckpointError, ConfigError
from .io_utils import atomic_path
from .modeling.model import ESCNet
from .state_dict import load_strict, raise_on_report, shape_report

FORMAT = "escnet"
FORMAT_VERSION = 1


def save_checkpoint(model: ESCNet, path: str | Path, provenance: dict[str, object] | None = None) -> Path:
    """Write the weights, config and format version to ``path`` (.safetensors), atomically.

    ``provenance``: where the weights came from, ``{"weights": one line, "random_init": bool}``
    (e.g. a randomly initialised model saved by escnet-bench); kept in the metadata so that an
    export of this checkpoint can say so (see :func:`checkpoint_provenance`).
    """
    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(config_to_dict(model.config)),
        "torch": torch.__version__,
    }
    if provenance is not None:
        metadata["provenance"] = json.dumps(provenance)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def read_checkpoint_metadata(path: str | Path) -> dict[str, str]:
    """The checkpoint's metadata, its format and version checked (the header only: no tensor read)."""
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
    raw = meta.get("format_version")
    if not isinstance(raw, str) or not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) < 1:
        raise CheckpointError(
            f"{path}: checkpoint metadata format_version {str(raw)[:40]!r} is not a version number "
            f"(expected 1..{FORMAT_VERSION})"
        )
    if int(raw) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {int(raw)} is newer than this escnet "
            f"supports ({FORMAT_VERSION}); upgrade escnet"
        )
    return meta


def checkpoint_config(path: str | Path, meta: dict[str, str]) -> ESCNetConfig:
    """The config stored in the metadata, validated (types, ranges, consistency) before any allocation."""
    try:
        return config_from_dict(json.loads(meta["config"]))
    except KeyError:
        raise CheckpointError(f"{path}: checkpoint metadata has no model config") from None
    except ConfigError as e:  # readable, but refused: types, ranges, sizes or cost
        raise CheckpointError(f"{path}: checkpoint {str(e).splitlines()[0][:300]}") from None
    except (ValueError, TypeError, RecursionError) as e:  # json.JSONDecodeError and ConfigError are ValueErrors
        raise CheckpointError(f"{path}: checkpoint config is unreadable: {str(e).splitlines()[0][:300]}") from None


def expected_shapes(config: ESCNetConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the model ``config`` describes, with its shape, from a model built
    on the meta device (no memory is allocated for its tensors)."""
    with torch.device("meta"):
        model = ESCNet(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_header(path: Path, config: ESCNetConfig) -> None:
    """Compare the tensor names and shapes in the file's header with those ``config`` implies."""
    with safe_open(str(path), framework="pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    try:
        expected = expected_shapes(config)
    except Exception as e:  # a combination the checks let through but a module refuses: still one line
        raise CheckpointError(f"{path}: checkpoint config does not build a model ({_first_line(e)})") from None
    raise_on_report(shape_report(expected, found), f"checkpoint {path}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def checkpoint_provenance(path: str | Path) -> dict[str, object] | None:
    """The provenance :func:`save_checkpoint` recorded (None: none recorded, or unreadable)."""
    try:
        value = json.loads(read_checkpoint_metadata(path).get("provenance", "null"))
    except (CheckpointError, ValueError):
        return None
    ok = (
        isinstance(value, dict) and isinstance(value.get("weights"), str) and isinstance(value.get("random_init"), bool)
    )
    return value if ok else None


def load_checkpoint(path: str | Path, preset: str | None = None, map_location: str = "cpu") -> ESCNet:
    """Build the model the checkpoint describes and load it strictly.

    The metadata, the config and every tensor's name and shape (from the header) are checked
    before the model or any tensor is allocated. ``preset``: when given, the checkpoint must be
    of that preset.
    """
    from safetensors.torch import load_file

    path = Path(path)
    config = checkpoint_config(path, read_checkpoint_metadata(path))
    if preset is not None and config.preset != preset:
        raise CheckpointError(f"{path}: checkpoint is for preset {config.preset!r}, expected {preset!r}")
    check_header(path, config)
    try:
        state = load_file(str(path), device=map_location)
    except Exception as e:
        raise CheckpointError(
            f"{path}: tensors cannot be read (truncated or corrupt?): "
            f"{str(e).splitlines()[0][:160] if str(e) else type(e).__name__}"
        ) from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} tensors hold NaN or Inf (first: {bad[0]}); not loaded")
    model = ESCNet(config)
    load_strict(model, state, f"checkpoint {path}")
    return model.eval()
