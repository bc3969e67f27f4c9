"""Reading weight files safely and loading them strictly, with a readable key report."""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError
from .pickle_scan import scan

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
    obj = torch_load_weights(path)
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


def torch_load_weights(path: Path) -> object:
    """``torch.load(weights_only=True)``, with a refusal that says what the file holds.

    torch's own refusal suggests re-running with ``weights_only=False``: never shown, since that
    is exactly the code execution the check prevents. Neither are torch's warnings about the
    file (e.g. its pickle protocol) when the file is refused: the refusal is the one line.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise _refusal(path, str(e)) from None
        except Exception as e:
            detail = type(e).__name__ if "weights_only" in str(e) else _first_line(e)
            raise CheckpointError(f"{path}: cannot be read as a PyTorch weights file ({detail})") from None
    for w in caught:  # a file that loaded: torch's warnings stand
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return obj


def _refusal(path: Path, text: str) -> CheckpointError:
    """The one line for a pickle the safe loader refused; what it names is read without running it."""
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if "Weights only load failed" not in text:
        return CheckpointError(f"{path}: not a readable PyTorch weights file (damaged pickle)")
    facts = scan(path)
    code = facts.code or (found.group(1) if found else None)
    if code is not None:
        return CheckpointError(
            f"{path}: holds code, not only tensors: a pickle naming {code}; it was not loaded, "
            "since loading it would run that code. Use a state dict of tensors (.safetensors or .pt/.pth)"
        )
    if facts.protocol is not None and facts.protocol > 2:
        return CheckpointError(
            f"{path}: is pickled with protocol {facts.protocol}, which the safe loader (torch.load with "
            "weights_only) does not read; it was not loaded. Save it with torch.save's default protocol, "
            "or as .safetensors"
        )
    return CheckpointError(
        f"{path}: holds pickled content the safe loader refuses (objects beyond tensors, or damage); it was not loaded"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def key_report(module: nn.Module, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape mismatches) of ``state`` against ``module``."""
    own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    return shape_report(own, {k: tuple(v.shape) for k, v in state.items()})


def shape_report(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape mismatches) of the shapes ``found`` in a file against ``expected``."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        f"{k}: file {found[k]} vs model {expected[k]}" for k in expected if k in found and found[k] != expected[k]
    ]
    return missing, unexpected, mismatched


def raise_on_report(report: tuple[list[str], list[str], list[str]], what: str) -> None:
    """One CheckpointError listing what is off, when anything is."""
    parts = []
    for label, keys in zip(("missing", "unexpected", "wrong shape"), report, strict=True):
        if keys:
            more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
            parts.append(f"{len(keys)} {label}: {', '.join(keys[:_SHOW])}{more}")
    if parts:
        raise CheckpointError(f"{what} does not match the model: " + "; ".join(parts))


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load every key with the right shape, or raise one CheckpointError listing what is off."""
    raise_on_report(key_report(module, state), what)
    module.load_state_dict(dict(state), strict=True)
