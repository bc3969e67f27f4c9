"""Parameter and FLOP counts per graph, with ``torch.utils.flop_counter``.

FLOPs are counted as torch does (2 per multiply-accumulate), on a twin of the model built on
the meta device (shapes only: the count is the same, and nothing is computed). The sliding-window protocol
runs the image encoder and the decoder on 5 views (4 windows + 1 global); the text encoder
runs once per vocabulary either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .modeling.model import ESCNet

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
    with torch.device("meta"):
        twin = ESCNet(cfg).eval()
        images = torch.zeros(batch, 3, s, s)
        tokens = torch.zeros(num_classes * cfg.num_templates, cfg.clip.context_length, dtype=torch.long)
        feats = twin.encode_image(images)
        text = torch.zeros(num_classes, cfg.num_templates, cfg.clip.embed_dim)
    clip = model.clip
    image_modules = [clip.visual, model.guidance]
    text_modules = [clip.token_embedding, clip.transformer, clip.ln_final]
    decoder_modules = [model.corr_embed, model.text_guidance, model.prompt_maps, model.blocks, model.decoder]
    text_params = _params(text_modules) + clip.positional_embedding.numel() + clip.text_projection.numel()
    return [
        GraphCost("image_encoder", _params(image_modules), _count(lambda: twin.encode_image(images))),
        GraphCost("text_encoder", text_params, _count(lambda: twin.encode_text(tokens))),
        GraphCost("decoder", _params(decoder_modules), _count(lambda: twin.decode(*feats, text))),
    ]


@torch.no_grad()
def catseg_costs(model: ESCNet, costs: list[GraphCost], num_classes: int, batch: int = 1) -> list[GraphCost]:
    """The CAT-Seg equivalent's per-graph costs (``catseg.CATSegDecoder``): ESC-Net's image and
    text encoders (the same modules: ``costs``' rows), CAT-Seg's aggregator + decoder counted on
    the same inputs (on the meta device: only its cost is used)."""
    from .modeling.catseg import CATSegDecoder

    cfg = model.config
    g = cfg.grid
    with torch.device("meta"):
        dense = torch.zeros(batch, cfg.clip.embed_dim, g, g)
        guid_a = torch.zeros(batch, cfg.guidance_dims[0], 2 * g, 2 * g)
        guid_b = torch.zeros(batch, cfg.guidance_dims[1], 4 * g, 4 * g)
        text = torch.zeros(num_classes, cfg.num_templates, cfg.clip.embed_dim)
        decoder = CATSegDecoder(cfg).eval()
    row = GraphCost("decoder", _params([decoder]), _count(lambda: decoder(dense, guid_a, guid_b, text)))
    return [c for c in costs if c.graph != "decoder"] + [row]


def total_gflops(costs: list[GraphCost], sliding_window: bool) -> float:
    """Image + decoder per view (x5 for sliding window) + the text encoder once."""
    views = SLIDING_VIEWS if sliding_window else 1
    by = {c.graph: c.gflops for c in costs}
    return views * (by["image_encoder"] + by["decoder"]) + by["text_encoder"]


def forward_gflops_estimate(model: ESCNet, num_classes: int, rounds: int) -> float:
    """GFLOPs of ``escnet-info``'s timed forwards, estimated before they run: the text encoder once,
    then ``rounds`` + 1 (the warm-up) rounds of the image encoder and both decoders, each side.

    Counted at 1 and 2 classes and extended linearly in the class count (the decoders' cost is
    linear in it, plus a few per-chunk terms: within a few percent), so the estimate costs the
    same at any class count.
    """
    one, two = graph_costs(model, 1), graph_costs(model, 2)
    cat_one, cat_two = catseg_costs(model, one, 1), catseg_costs(model, two, 2)

    def at(a: list[GraphCost], b: list[GraphCost], graph: str) -> float:
        low, high = next(c.gflops for c in a if c.graph == graph), next(c.gflops for c in b if c.graph == graph)
        return low + (num_classes - 1) * (high - low)

    image, text = at(one, two, "image_encoder"), at(one, two, "text_encoder")
    decoders = at(one, two, "decoder") + at(cat_one, cat_two, "decoder")
    return text + (rounds + 1) * (2 * image + decoders)
