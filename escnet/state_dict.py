"""Reading weight files safely and loading them strictly, with a readable key report."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError

_SHOW = 8  # keys listed per category in a report


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or a torch pickle loaded with ``weights_only=True``.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` and a DistributedDataParallel
    ``module.`` prefix. Never executes pickled code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types for bad headers
            raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(e)})") from None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith("/constants.pkl") for n in zf.namelist()):
                raise CheckpointError(
                    f"{path}: is a TorchScript archive (OpenAI's original .pt), which carries code and is "
                    "not loaded; use open_clip's state-dict release of the same weights (.bin or .safetensors)"
                )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as a PyTorch weights file ({_first_line(e)})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, expected a state dict of tensors")
    state = {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {bad[:_SHOW]}")
    return state


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def key_report(module: nn.Module, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape mismatches) of ``state`` against ``module``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    return missing, unexpected, mismatched


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load every key with the right shape, or raise one CheckpointError listing what is off."""
    missing, unexpected, mismatched = key_report(module, state)
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:_SHOW])}{more}")
        raise CheckpointError(f"{what} does not match the model: " + "; ".join(parts))
    module.load_state_dict(dict(state), strict=True)
