"""Pseudo prompt generator: points and a mask per class, by tensor arithmetic only.

No data-dependent Python control flow: k-means runs a fixed number of iterations from a
deterministic farthest-point initialisation, so the same input always gives the same
prompts and the whole generator exports to ONNX as plain tensor ops (no OneHot, no If).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import PromptConfig


def _grid_coords(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel-centre coordinates of an h x w grid as (h*w, 2) in (x, y) grid units."""
    idx = torch.arange(h * w, device=like.device)
    x = (idx % w).to(like.dtype)
    y = torch.div(idx, w, rounding_mode="floor").to(like.dtype)
    return torch.stack([x, y], dim=-1)


def _take(coords: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """coords (h*w, 2), index (N, K) -> (N, K, 2)."""
    return coords[index]


class PseudoPromptGenerator(nn.Module):
    """Class log-probabilities -> positive points (one per k-means region) and a mask prompt.

    Input: log_prob (N, h, w), the log of the class's probability at each pixel (log-softmax
    over all classes). Output: points (N, K, 2) normalised to [0, 1] as (x, y) pixel centres
    (no gradient), and mask (N, 1, h, w): SAM's kind of mask input, logits: logit(p) with p
    clamped to [eps, 1 - eps] (``mask_prob_eps``), positive exactly on the foreground when
    alpha = 0.5 (the soft map, with gradient). Foreground = prob > alpha. A class with no foreground, or a region left
    empty, falls back to the class's arg-max pixel.
    """

    def __init__(self, config: PromptConfig) -> None:
        super().__init__()
        self.alpha = config.alpha
        self.regions = config.num_regions
        self.iters = config.kmeans_iters
        self.levels = float(config.rank_levels)
        self.eps = config.mask_prob_eps

    def forward(self, log_prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prob = torch.exp(log_prob)  # (N, h, w)
        p = torch.clamp(prob, self.eps, 1.0 - self.eps)
        return self.points(prob), (torch.log(p) - torch.log(1.0 - p)).unsqueeze(1)  # logit(p)

    @torch.no_grad()
    def points(self, prob: torch.Tensor) -> torch.Tensor:
        """prob (N, h, w) -> points (N, K, 2) normalised (x, y) pixel centres."""
        n, h, w = prob.shape
        prob = prob.detach()
        p = prob.reshape(n, h * w)  # (N, h*w)
        fg = (p > self.alpha).to(p.dtype)  # (N, h*w)
        rank = torch.round(p * self.levels)  # (N, h*w): what peaks are chosen on (see PromptConfig)
        coords = _grid_coords(h, w, p)  # (h*w, 2)
        best = rank.argmax(dim=1, keepdim=True)  # (N, 1): fallback pixel

        # Farthest-point initialisation inside the foreground, from its most probable pixel.
        start = (rank * fg - (1.0 - fg)).argmax(dim=1, keepdim=True)  # (N, 1)
        centers = [_take(coords, start)]  # each (N, 1, 2)
        min_d = ((coords[None] - centers[0]) ** 2).sum(-1)  # (N, h*w)
        for _ in range(1, self.regions):
            far = (min_d * fg - (1.0 - fg)).argmax(dim=1, keepdim=True)  # (N, 1)
            c = _take(coords, far)
            centers.append(c)
            min_d = torch.minimum(min_d, ((coords[None] - c) ** 2).sum(-1))
        center = torch.cat(centers, dim=1)  # (N, K, 2)

        ks = torch.arange(self.regions, device=p.device)
        assign = self._assign(coords, center, fg, ks)
        for _ in range(self.iters):
            count = assign.sum(dim=1)  # (N, K)
            mean = torch.matmul(assign.transpose(1, 2), coords) / count.clamp(min=1.0)[..., None]  # (N, K, 2)
            center = torch.where(count[..., None] > 0, mean, center)
            assign = self._assign(coords, center, fg, ks)

        # Most probable pixel of each region; empty regions fall back to the arg-max pixel.
        count = assign.sum(dim=1)  # (N, K)
        region_score = rank[..., None] * assign - (1.0 - assign)  # (N, h*w, K)
        peak = region_score.argmax(dim=1)  # (N, K)
        peak = torch.where(count > 0, peak, best.expand_as(peak))
        points = _take(coords, peak)  # (N, K, 2) grid units
        scale = torch.tensor([w, h], dtype=p.dtype, device=p.device)
        return (points + 0.5) / scale  # normalised pixel centres

    @staticmethod
    def _assign(coords: torch.Tensor, center: torch.Tensor, fg: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
        """Nearest-centre assignment of foreground pixels: (N, h*w, K) of 0/1."""
        d = ((coords[None, :, None, :] - center[:, None, :, :]) ** 2).sum(-1)  # (N, h*w, K)
        nearest = d.argmin(dim=-1, keepdim=True)  # (N, h*w, 1)
        return (nearest == ks).to(fg.dtype) * fg[..., None]
