"""Parameter and FLOP counts per graph, with ``torch.utils.flop_counter``.

FLOPs are counted as torch does (2 per multiply-accumulate). The sliding-window protocol
runs the image encoder and the decoder on 5 views (4 windows + 1 global); the text encoder
runs once per vocabulary either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .model import ESCNet

SLIDING_VIEWS = 5


@dataclass(frozen=True)
class GraphCost:
    graph: str
    params: int
    gflops: float


def _count(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def _params(modules) -> int:
    seen = set()
    total = 0
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


@torch.no_grad()
def graph_costs(model: ESCNet, num_classes: int, batch: int = 1) -> list[GraphCost]:
    """Per-graph parameters and GFLOPs for one S x S view and ``num_classes`` classes."""
    cfg = model.config
    s = cfg.image_size
    images = torch.zeros(batch, 3, s, s)
    tokens = torch.zeros(num_classes * cfg.num_templates, cfg.clip.context_length, dtype=torch.long)
    tokens[:, 0] = 49406  # start of text
    tokens[:, 1] = 49407  # end of text: the pooled position
    feats = model.encode_image(images)
    text = torch.nn.functional.normalize(torch.randn(num_classes, cfg.num_templates, cfg.clip.embed_dim), dim=-1)
    clip = model.clip
    image_modules = [clip.visual, model.guidance]
    text_modules = [clip.token_embedding, clip.transformer, clip.ln_final]
    decoder_modules = [model.corr_embed, model.text_guidance, model.blocks, model.decoder]
    text_params = _params(text_modules) + clip.positional_embedding.numel() + clip.text_projection.numel()
    return [
        GraphCost("image_encoder", _params(image_modules), _count(lambda: model.encode_image(images))),
        GraphCost("text_encoder", text_params, _count(lambda: model.encode_text(tokens))),
        GraphCost("decoder", _params(decoder_modules), _count(lambda: model.decode(*feats, text))),
    ]


def total_gflops(costs: list[GraphCost], sliding_window: bool) -> float:
    """Image + decoder per view (x5 for sliding window) + the text encoder once."""
    views = SLIDING_VIEWS if sliding_window else 1
    by = {c.graph: c.gflops for c in costs}
    return views * (by["image_encoder"] + by["decoder"]) + by["text_encoder"]
