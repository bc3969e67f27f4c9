"""Block k > 0's per-class prompt map, from the correlation embedding block k-1 refined."""

from __future__ import annotations

import torch
from torch import nn

from .config import PromptConfig


class PromptMap(nn.Module):
    """x (B, Tc, C, h, w) -> class scores (B, Tc, h, w), whose softmax over all classes gives
    the block's pseudo prompts.

    ``map_head="learned"``: a 1x1 projection C -> 1 (initialised to the channel mean, so both
    options start alike); ``"mean"``: the channel mean, no weights.
    """

    def __init__(self, dim: int, config: PromptConfig) -> None:
        super().__init__()
        self.proj: nn.Linear | None = None
        if config.map_head == "learned":
            self.proj = nn.Linear(dim, 1)
            nn.init.constant_(self.proj.weight, 1.0 / dim)
            nn.init.zeros_(self.proj.bias)
        elif config.map_head != "mean":
            raise ValueError(f"prompt.map_head {config.map_head!r}: expected 'learned' or 'mean'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            return x.mean(dim=2)
        b, t, c, h, w = x.shape
        scores = torch.matmul(self.proj.weight, x.reshape(b, t, c, h * w))  # (B, Tc, 1, h*w)
        return scores.reshape(b, t, h, w) + self.proj.bias
