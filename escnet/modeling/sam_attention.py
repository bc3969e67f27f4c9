"""SAM's two-way attention layer between a few prompt tokens and many image tokens, computed
without splitting the image tokens into heads.

segment_anything's ``Attention`` reshapes queries, keys and values to (N, heads, tokens, d) and
back. On the image side (h*w tokens per class) each of those is a transpose of a large tensor,
twice per cross attention. Here the *prompt* side, a handful of tokens, carries the heads
instead: its projections are spread into a block-diagonal (N, heads * n, I) matrix, head h's
rows holding only head h's channels, so that

- prompt tokens attending to the image: logits (N, heads*n, m) = blocks(q) @ k^T, softmax over
  the image tokens, (N, heads*n, I) = weights @ v, and each head keeps its own channels;
- image tokens attending to the prompts: logits (N, m, heads*n) = q @ blocks(k)^T, softmax per
  head over its n prompt tokens, and weights @ blocks(v) is already (N, m, I), heads recombined.

The image-side tensors keep their (N, m, I) layout throughout. Every product with the zero
blocks adds exact zeros: the same values as SAM's per-head attention, up to float summation
order. Weights are the layer's own (``TwoWayAttentionBlock`` and its ``Attention`` modules).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from segment_anything.modeling.transformer import Attention, TwoWayAttentionBlock
from torch import nn


def head_blocks(heads: int, width: int) -> torch.Tensor:
    """(heads, 1, width) float32: 1 where channel c belongs to head h (c // (width / heads) == h)."""
    owner = torch.arange(width) // (width // heads)
    return (owner[None, None, :] == torch.arange(heads)[:, None, None]).float()


def _spread(x: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """x (N, n, I) -> (N, heads*n, I): row block h holds x's head-h channels, zeros elsewhere."""
    n, t, width = x.shape
    return (x.unsqueeze(1) * blocks).reshape(n, -1, width)


def prompts_to_image(
    attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: torch.Tensor
) -> torch.Tensor:
    """SAM ``Attention`` for few queries over many keys: q (N, n, E), k and v (N, m, E),
    blocks (heads, 1, I) from ``head_blocks`` -> (N, n, E)."""
    return prompts_to_image_projected(attn, attn.q_proj(q), attn.k_proj(k), attn.v_proj(v), blocks)


def prompts_to_image_projected(
    attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: torch.Tensor
) -> torch.Tensor:
    """``prompts_to_image`` from the projections: q (N, n, I), k and v (N, m, I) -> (N, n, E)."""
    heads, width = blocks.shape[0], blocks.shape[-1]
    logits = torch.matmul(_spread(q, blocks), k.transpose(1, 2)) / math.sqrt(width // heads)  # (N, H*n, m)
    out = torch.matmul(torch.softmax(logits, dim=-1), v)  # (N, H*n, I): each head's weights, all channels
    out = (out.reshape(out.shape[0], heads, -1, width) * blocks).sum(dim=1)  # (N, n, I): own channels
    return attn.out_proj(out)


# image_to_prompts mirrors prompts_to_image (keys and queries swap sides); the two stay apart because
# the head blocks spread the few side (queries there, keys here), which changes every reshape below.
def image_to_prompts(
    attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: torch.Tensor
) -> torch.Tensor:
    """SAM ``Attention`` for many queries over few keys: q (N, m, E), k and v (N, n, E),
    blocks (heads, 1, I) from ``head_blocks`` -> (N, m, E)."""
    return image_to_prompts_projected(attn, attn.q_proj(q), attn.k_proj(k), attn.v_proj(v), blocks)


def image_to_prompts_projected(
    attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: torch.Tensor
) -> torch.Tensor:
    """``image_to_prompts`` from the projections: q (N, m, I), k and v (N, n, I) -> (N, m, E)."""
    heads, width = blocks.shape[0], blocks.shape[-1]
    n, m, n_keys = q.shape[0], q.shape[1], k.shape[1]
    logits = torch.matmul(q, _spread(k, blocks).transpose(1, 2)) / math.sqrt(width // heads)  # (N, m, H*n)
    weights = torch.softmax(logits.reshape(n, m, heads, n_keys), dim=-1).reshape(n, m, heads * n_keys)
    return attn.out_proj(torch.matmul(weights, _spread(v, blocks)))  # (N, m, I) -> (N, m, E)


ImageProjection = Callable[[nn.Linear, bool], torch.Tensor]  # (projection, with positions) -> (N, m, I)


def two_way_layer(
    layer: TwoWayAttentionBlock,
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_pe: torch.Tensor,
    key_pe: torch.Tensor,
    blocks: torch.Tensor,
    project: ImageProjection | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``TwoWayAttentionBlock.forward`` with both cross attentions computed as above.

    queries (N, n, E) prompt tokens, keys (N, m, E) image tokens, query_pe like queries,
    key_pe (1 or N, m, E) -> updated (queries, keys). ``project(linear, with_pe)``, if given,
    returns ``linear(keys + key_pe)`` / ``linear(keys)`` computed another way (see
    ``SharedImageKeys``); by default those products are taken directly.
    """
    if layer.skip_first_layer_pe:
        queries = layer.self_attn(q=queries, k=queries, v=queries)
    else:
        q = queries + query_pe
        queries = queries + layer.self_attn(q=q, k=q, v=queries)
    queries = layer.norm1(queries)
    if project is None:
        k = keys + key_pe  # the image tokens with their positions, for both cross attentions
        project = lambda linear, with_pe: linear(k if with_pe else keys)  # noqa: E731
    t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
    attended = prompts_to_image_projected(
        t2i, t2i.q_proj(queries + query_pe), project(t2i.k_proj, True), project(t2i.v_proj, False), blocks
    )
    queries = layer.norm2(queries + attended)
    queries = layer.norm3(queries + layer.mlp(queries))
    q = queries + query_pe
    attended = image_to_prompts_projected(i2t, project(i2t.q_proj, True), i2t.k_proj(q), i2t.v_proj(queries), blocks)
    return queries, layer.norm4(keys + attended)


class SharedImageKeys:
    """The first layer's image tokens, keys = image (per image) + dense (per class), with
    dense = W low + b the mask embedding's last 1x1 conv of its few channels (``low``). A
    projection P of keys is then P(image) once per image plus (P W) low per class: the same
    values, with the per-class product over ``low``'s few channels instead of the full width.

    image (B, m, E) shared by the N = B*T class entries (image b's classes are rows b*T..b*T+T-1),
    low (N, m, L), weight (E, L), bias (E,), key_pe (1, m, E).
    """

    def __init__(
        self, image: torch.Tensor, low: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, key_pe: torch.Tensor
    ) -> None:
        self.image, self.low, self.weight, self.bias, self.key_pe = image, low, weight, bias, key_pe

    def _broadcast(self, per_class: torch.Tensor, per_image: torch.Tensor) -> torch.Tensor:
        """(N, m, X) + (B, m, X) over each image's T classes -> (N, m, X)."""
        b = per_image.shape[0]
        return (per_class.reshape(b, -1, *per_class.shape[1:]) + per_image.unsqueeze(1)).reshape(per_class.shape)

    def keys(self) -> torch.Tensor:
        """The keys themselves (N, m, E): the layer's residual needs them."""
        return self._broadcast(F.linear(self.low, self.weight, self.bias), self.image)

    def project(self, linear: nn.Linear, with_pe: bool) -> torch.Tensor:
        """linear(keys + key_pe) if with_pe else linear(keys): (N, m, I)."""
        shared = self.image + self.key_pe if with_pe else self.image  # (B, m, E)
        per_class = F.linear(self.low, torch.matmul(linear.weight, self.weight), torch.mv(linear.weight, self.bias))
        return self._broadcast(per_class, linear(shared))
