"""ESC-Net: open-vocabulary semantic segmentation (CLIP + SAM blocks), in PyTorch.

Public API: ``build_model``, ``save_checkpoint``, ``load_checkpoint``, ``ESCNet``,
``ESCNetConfig``, ``PRESETS``.

The public names are imported on first use (PEP 562), so that ``import escnet`` (and every
console script's ``--help``) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import Any

_PUBLIC = {
    "build_model": ".builder",
    "load_checkpoint": ".checkpoint",
    "save_checkpoint": ".checkpoint",
    "ESCNetConfig": ".config",
    "CheckpointError": ".errors",
    "ESCNetInputError": ".errors",
    "CLIP_MEAN": ".modeling.model",
    "CLIP_STD": ".modeling.model",
    "BlockInput": ".modeling.model",
    "BlockOutput": ".modeling.model",
    "ESCNet": ".modeling.model",
    "ImageFeatures": ".modeling.model",
    "PRESETS": ".presets",
    "get_config": ".presets",
}


class _TorchvisionFirst(importlib.abc.MetaPathFinder):
    """Runs the torchvision compatibility shim right before the first ``import torchvision``
    (from open_clip, segment_anything or our own modules), then steps aside."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "torchvision":
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            from ._torchvision_compat import ensure_torchvision

            ensure_torchvision()
        return None  # the regular finders import it


if "torchvision" in sys.modules:  # imported before escnet: repair what still can be
    from ._torchvision_compat import ensure_torchvision

    ensure_torchvision()
elif not any(isinstance(f, _TorchvisionFirst) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionFirst())


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'escnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "BlockInput",
    "BlockOutput",
    "PRESETS",
    "CheckpointError",
    "ESCNet",
    "ESCNetConfig",
    "ESCNetInputError",
    "ImageFeatures",
    "build_model",
    "get_config",
    "load_checkpoint",
    "save_checkpoint",
]
__version__ = "0.1.0"
