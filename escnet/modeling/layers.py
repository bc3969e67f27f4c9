"""Small layer helpers shared by the ESC block's parts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 ``Conv2d`` applied to a channels-last tensor: x (..., Cin) -> (..., Cout), with the
    conv's own weight (Cout, Cin, 1, 1) and bias, as one matrix product over the last axis."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)
