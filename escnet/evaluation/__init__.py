"""escnet.evaluation: confusion-matrix metrics, the predictor-driven loop, the PyTorch predictor."""

from .loop import EvalResult, Predictor, evaluate
from .metrics import ConfusionMatrix, SegMetrics
from .predictor import TorchPredictor

__all__ = ["ConfusionMatrix", "EvalResult", "Predictor", "SegMetrics", "TorchPredictor", "evaluate"]
