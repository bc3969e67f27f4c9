"""The PyTorch predictor: ESC-Net through :mod:`escnet.inference`, single view or sliding window."""

from __future__ import annotations

import numpy as np
import torch

from ..inference import predict_scores, preprocess
from ..modeling.model import ESCNet


class TorchPredictor:
    """image (H, W, 3) uint8 -> label map (H, W) int64 over ``class_names``.

    The vocabulary's text embeddings are computed once. ``device``: where the model runs.
    """

    def __init__(
        self, model: ESCNet, class_names: list[str], sliding_window: bool = False, device: str | torch.device = "cpu"
    ) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.sliding_window = sliding_window
        with torch.no_grad():
            self.text = model.embed_classes(class_names)  # (T, P, D)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        x = preprocess(torch.from_numpy(np.array(image))).to(self.device)  # (1, 3, H, W)
        scores = predict_scores(self.model, x, self.text, image.shape[:2], self.sliding_window)  # (T, H, W)
        return scores.argmax(dim=0).cpu().numpy()
