"""escnet.training: ``TrainConfig`` and ``train`` (the engine behind ``escnet-train``)."""

from .config import TrainConfig
from .engine import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
