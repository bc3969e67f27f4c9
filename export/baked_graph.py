"""The baked-vocabulary graph as an ``nn.Module``: uint8 RGB images in, labels out, classes inside.

Everything the runtime does around the three graphs is here in torch, so one ONNX graph holds
it: uint8 -> float, CLIP normalisation at the image's size, bilinear resize to S, the image
encoder, the decoder (its steps over class chunks, unrolled at export time: T is fixed, the
weights are shared by every chunk), and per chunk of classes the upsampling to S, sigmoid,
upsampling to (H, W) and a running arg-max (first maximum wins ties). Nothing of size
T x H x W is ever formed, so memory follows the chunk, not the vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from escnet import CLIP_MEAN, CLIP_STD, ESCNet
from escnet.chunks import class_spans


def _bilinear(x: torch.Tensor, size: tuple[int, int] | tuple[torch.SymInt, torch.SymInt]) -> torch.Tensor:
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


class BakedSegmenter(nn.Module):
    """image (B, H, W, 3) uint8 RGB -> labels (B, H, W) int32, scores (B, T, 4g, 4g) float32.

    ``embeddings`` (T, P, D) float32: the vocabulary's text embeddings, stored as a buffer (a
    constant of the exported graph). ``class_chunk``: classes per decoder step;
    ``post_chunk``: classes per upsampling + arg-max step.
    """

    def __init__(self, model: ESCNet, embeddings: torch.Tensor, class_chunk: int, post_chunk: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("embeddings", embeddings.float().contiguous())
        self.register_buffer("mean", torch.tensor(CLIP_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CLIP_STD, dtype=torch.float32).view(1, 3, 1, 1))
        self.class_chunk = class_chunk
        self.post_chunk = post_chunk

    def views(self, image: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, S, S) float32: /255, (x - mean) / std, bilinear to S."""
        s = self.model.config.image_size
        x = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # (B, 3, H, W)
        x = (x - self.mean) / self.std
        return _bilinear(x, (s, s))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = image.shape[1], image.shape[2]
        s = self.model.config.image_size
        feats = self.model.encode_image(self.views(image))
        logits = self.model.decode(*feats, self.embeddings, class_chunk=self.class_chunk)  # (B, T, 4g, 4g)
        best = labels = None
        for start, end in class_spans(logits.shape[1], self.post_chunk):
            probs = torch.sigmoid(_bilinear(logits[:, start:end], (s, s)))  # (B, Tc, S, S)
            top, idx = _bilinear(probs, (h, w)).max(dim=1)  # (B, H, W): first maximum of the chunk
            idx = idx + start
            if best is None or labels is None:
                best, labels = top, idx
                continue
            take = top > best  # an earlier chunk keeps ties
            best, labels = torch.where(take, top, best), torch.where(take, idx, labels)
        assert labels is not None
        return labels.to(torch.int32), torch.sigmoid(logits)
