"""What trains, at which learning rate: parameter groups, the CLIP q/v-only rule, the schedule.

CLIP: only the attention query and value projections train, in both towers. open_clip keeps
q, k and v stacked in one ``attn.in_proj_weight`` (3W, W) / ``in_proj_bias`` (3W,), so k is
frozen inside a trainable tensor in two steps:

1. a gradient hook multiplies the gradient by a 0/1 row mask (k rows 0), so k gets no
   gradient and adds nothing to the clipped gradient norm;
2. after each optimiser step the k rows are copied back from a frozen copy, because AdamW's
   decoupled weight decay would otherwise still shrink them.

Every other CLIP tensor gets ``requires_grad=False``. Tensors that the model already froze
(unused SAM parts, ``clip.logit_scale``) stay frozen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..modeling.model import ESCNet


def _is_qkv(name: str) -> bool:
    return ".attn.in_proj_" in name and ("visual.transformer.resblocks." in name or name.startswith("transformer."))


@dataclass
class FrozenKeys:
    """The k slices of CLIP's in_proj tensors: gradient masks and the values to restore."""

    params: list[nn.Parameter]
    saved: list[torch.Tensor]  # the k rows, (W, W) or (W,)

    def restore(self) -> None:
        with torch.no_grad():
            for p, k in zip(self.params, self.saved, strict=True):
                w = p.shape[0] // 3
                p[w : 2 * w].copy_(k)


def freeze_clip_except_qv(model: ESCNet) -> FrozenKeys:
    """Freeze CLIP except the q and v rows of every attention in_proj (see the module doc)."""
    params, saved = [], []
    for name, p in model.clip.named_parameters():
        if not _is_qkv(name) or not p.requires_grad:
            p.requires_grad_(False)
            continue
        w = p.shape[0] // 3
        mask = torch.ones_like(p)
        mask[w : 2 * w] = 0.0  # rows of k
        p.register_hook(lambda g, m=mask: g * m)
        params.append(p)
        saved.append(p.detach()[w : 2 * w].clone())
    return FrozenKeys(params, saved)


def param_groups(model: ESCNet, lr: float, backbone_multiplier: float, weight_decay: float) -> list[dict]:
    """Three AdamW groups over the trainable tensors: ``head`` at ``lr``; ``clip`` and ``sam``
    (the ESC blocks' SAM prompt encoders and two-way transformers) at ``lr * backbone_multiplier``."""
    groups: dict[str, list[nn.Parameter]] = {"head": [], "clip": [], "sam": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("clip."):
            groups["clip"].append(p)
        elif name.startswith("blocks.") and ".sam." in name:
            groups["sam"].append(p)
        else:
            groups["head"].append(p)
    scale = {"head": 1.0, "clip": backbone_multiplier, "sam": backbone_multiplier}
    return [{"name": k, "params": v, "lr": lr * scale[k], "weight_decay": weight_decay} for k, v in groups.items() if v]


def build_optimizer(
    model: ESCNet, lr: float, backbone_multiplier: float, weight_decay: float
) -> tuple[torch.optim.AdamW, FrozenKeys]:
    """AdamW over :func:`param_groups`, after :func:`freeze_clip_except_qv`; the k rows are
    restored after every step."""
    keys = freeze_clip_except_qv(model)
    opt = torch.optim.AdamW(param_groups(model, lr, backbone_multiplier, weight_decay))
    opt.register_step_post_hook(lambda *_: keys.restore())
    return opt, keys


def cosine_factor(step: int, total: int, warmup: int = 0) -> float:
    """Learning-rate factor: linear warmup over ``warmup`` steps, then cosine from 1 to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(opt: torch.optim.Optimizer, total: int, warmup: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_factor(s, total, warmup))
