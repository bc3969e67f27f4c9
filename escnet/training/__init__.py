"""escnet.training: ``TrainConfig`` and ``train`` (the training loop behind ``escnet-train``).

Imported on first use, so that ``escnet-train --help`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {"TrainConfig": ".config", "TrainResult": ".loop", "train": ".loop"}


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'escnet.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name], __name__), name)


__all__ = ["TrainConfig", "TrainResult", "train"]
