"""Resumable training state: model, optimiser, schedule, step and RNG states, written atomically.

Saved with ``torch.save`` into a temporary file beside the target and renamed over it, so a
run killed at any moment leaves either the previous checkpoint or the new one, never half of
one. Read back with ``weights_only=True`` (no pickled code).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..io_utils import atomic_path
from ..state_dict import torch_load_weights

STATE_FORMAT = "escnet-train-state"
STATE_VERSION = 1


class TrainStateError(ValueError):
    """A training checkpoint that cannot be resumed from."""


def rng_states() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states, as plain tensors / lists."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    train_config: dict[str, Any],
    elapsed: float,
) -> None:
    """Everything a resumed run needs to continue at ``step`` (the number of finished steps)."""
    payload = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "step": step,
        "elapsed": elapsed,
        "train_config": train_config,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_states(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_state(path: Path) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_state`."""
    if not Path(path).is_file():
        raise TrainStateError(f"{path}: no training checkpoint")
    try:
        payload = torch_load_weights(Path(path))
    except CheckpointError as e:
        raise TrainStateError(f"training checkpoint {e}") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise TrainStateError(f"{path}: not an escnet training checkpoint")
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TrainStateError(f"{path}: training checkpoint version {version!r} is not a positive integer")
    if version > STATE_VERSION:
        raise TrainStateError(f"{path}: training checkpoint version {version} is newer than this escnet")
    return payload
