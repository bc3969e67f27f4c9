"""The PyTorch fp32 reference on the CPU: its outputs for every graph, its labels, and FLOPs.

Every backend is compared with these arrays, and every backend's graphs are fed these same
inputs (the reference's image features and text embeddings go into every decoder), so a
per-graph error is that graph's own and does not compound. FLOPs are ``escnet.flops.graph_costs``'
count for the same shapes, on the meta device: counted during a real CPU forward, torch's counter
misses the fused attention kernels (scaled_dot_product_attention) and would understate the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from escnet_runtime import contract as C

from escnet import ESCNet
from escnet.flops import graph_costs
from escnet.inference import preprocess
from escnet_bench.inputs import BenchInputs


@dataclass(frozen=True)
class ReferencePoint:
    """Reference inputs and outputs for one (classes, batch) point, keyed by contract names."""

    inputs: dict[str, dict[str, np.ndarray]]  # graph -> input name -> array
    outputs: dict[str, dict[str, np.ndarray]]  # graph -> output name -> array
    labels: np.ndarray  # (B, H, W) int64
    gflops: dict[str, float]  # graph -> GFLOPs of one call at this point
    margins: np.ndarray | None = None  # (B, H, W) float32: top-1 minus top-2 class score per pixel


def preprocess_batch(model: ESCNet, images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, S, S) CLIP-normalised float32, image by image as the reference does."""
    size = model.config.image_size
    return torch.cat([preprocess(img, size) for img in images])


def _scores(logits: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """logits (B, T, 4g, 4g) -> class scores (B, T, H, W), as ``escnet.inference.predict_scores``
    (single view): upsample to S, sigmoid, upsample to the image size."""
    size = logits.shape[-1] * 4
    probs = F.interpolate(logits.float(), (size, size), mode="bilinear", align_corners=False).sigmoid()
    return F.interpolate(probs, out_hw, mode="bilinear", align_corners=False)


def labels_from_logits(logits: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """logits (B, T, 4g, 4g) -> labels (B, H, W): the arg-max of the class scores."""
    return _scores(logits, out_hw).argmax(dim=1)


def labels_and_margins(logits: torch.Tensor, out_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B, T, 4g, 4g) -> labels (B, H, W) and each pixel's top-1 minus top-2 score (B, H, W);
    one class: margin 1 (nothing to confuse it with)."""
    probs = _scores(logits, out_hw)
    if probs.shape[1] < 2:
        return probs.argmax(dim=1), torch.ones_like(probs[:, 0])
    top = probs.topk(2, dim=1).values  # labels from arg-max: the same tie-break as everywhere else
    return probs.argmax(dim=1), top[:, 0] - top[:, 1]


@torch.no_grad()
def segment_torch(
    model: ESCNet,
    images: torch.Tensor,
    text: torch.Tensor,
    class_chunk: int | None = -1,
    encode_image: Callable[..., Any] | None = None,
    decode: Callable[..., Any] | None = None,
) -> torch.Tensor:
    """The reference pipeline, batched: (B, H, W, 3) uint8 on the CPU and text (T, P, D) on the
    model's device -> labels (B, H, W). Pre-processing runs on the CPU, as in the runtime.
    ``class_chunk``: classes per decoder call, as ``ESCNet.decode`` takes it (-1: the config's).
    ``encode_image``/``decode``: the model's graph methods in another form (``torch.compile``'d),
    by default the model's own."""
    encode_image = model.encode_image if encode_image is None else encode_image
    decode = model.decode if decode is None else decode
    pixels = preprocess_batch(model, images).to(text.device)
    logits = decode(*encode_image(pixels), text, class_chunk=class_chunk)
    return labels_from_logits(logits, tuple(images.shape[1:3]))


@torch.no_grad()
def compute_reference(model: ESCNet, inputs: BenchInputs) -> ReferencePoint:
    """Run the fp32 CPU model once per graph on ``inputs``; record outputs, labels and GFLOPs."""
    model = model.float().cpu().eval()
    images = torch.from_numpy(inputs.images)
    pixels = preprocess_batch(model, images)  # (B, 3, S, S)
    tokens = model.tokenize(inputs.names)  # (T*P, 77)
    text_flat = model.encode_text(tokens)  # (T*P, D)
    text = text_flat.reshape(inputs.classes, model.config.num_templates, -1)  # (T, P, D)
    feats = model.encode_image(pixels)
    logits = model.decode(*feats, text)  # (B, T, 4g, 4g)
    costs = {c.graph: c.gflops for c in graph_costs(model, inputs.classes, batch=int(images.shape[0]))}
    labels, margins = labels_and_margins(logits, tuple(images.shape[1:3]))
    as_np = lambda t: t.detach().cpu().numpy()
    image_out = {
        C.DENSE: as_np(feats.dense),
        C.GUIDANCE_A: as_np(feats.guidance_a),
        C.GUIDANCE_B: as_np(feats.guidance_b),
    }
    return ReferencePoint(
        inputs={
            C.IMAGE_ENCODER: {C.IMAGE: as_np(pixels)},
            C.TEXT_ENCODER: {C.TOKEN_IDS: as_np(tokens).astype(np.int64)},
            C.DECODER: {**image_out, C.CLASS_EMBEDDINGS: as_np(text)},
        },
        outputs={
            C.IMAGE_ENCODER: image_out,
            C.TEXT_ENCODER: {C.TEXT_EMBEDDINGS: as_np(text_flat)},
            C.DECODER: {C.LOGITS: as_np(logits)},
        },
        labels=as_np(labels).astype(np.int64),
        margins=as_np(margins).astype(np.float32),
        gflops={g: costs[g] for g in (C.IMAGE_ENCODER, C.TEXT_ENCODER, C.DECODER)},
    )
