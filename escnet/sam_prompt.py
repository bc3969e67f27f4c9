"""SAM's prompt encoder and two-way transformer, used export-friendly.

The modules are segment_anything's own (``PromptEncoder``, ``TwoWayTransformer``), so their
weights load from the official checkpoint unchanged. Like SAM's ``utils/onnx.py`` wrapper, the
point embedding is computed by arithmetic instead of boolean-index assignment: every point
here is a positive point, followed by SAM's padding point.
"""

from __future__ import annotations

import torch
from segment_anything.modeling import PromptEncoder, TwoWayTransformer
from torch import nn

from .config import SamConfig
from .layers import pointwise
from .sam_attention import head_blocks, two_way_layer


class SamPromptBlock(nn.Module):
    """Prompts -> SAM-refined image features for one ESC block, fed as SAM's mask decoder feeds
    its two-way transformer: the IoU token and mask tokens (``iou_token``, ``mask_tokens``, from
    the checkpoint's ``mask_decoder.*``) ahead of the sparse prompt tokens, the mask prompt as
    logits, the image embedding plus the dense prompt embedding, SAM's positional encoding.

    image (N, h, w, dim) channels-last, points (N, K, 2) normalised (x, y), mask logits
    (N, 1, 4h, 4w) -> refined image features (N, h, w, dim). Channels-last throughout: the image
    tokens are never transposed.
    """

    def __init__(self, config: SamConfig, grid: int, image_size: int) -> None:
        super().__init__()
        self.grid = grid
        # SAM's MaskDecoder names: loaded from mask_decoder.iou_token / mask_decoder.mask_tokens.
        self.iou_token = nn.Embedding(1, config.dim) if config.output_tokens else None
        self.mask_tokens = nn.Embedding(config.num_mask_tokens, config.dim) if config.output_tokens else None
        self.prompt_encoder = PromptEncoder(
            embed_dim=config.dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=config.mask_in_chans,
        )
        self.transformer = TwoWayTransformer(
            depth=config.depth,
            embedding_dim=config.dim,
            num_heads=config.heads,
            mlp_dim=config.mlp_dim,
            attention_downsample_rate=config.attention_downsample,
        )
        # Loaded from SAM's checkpoint but unused here (negative/box point embeddings, the
        # no-mask embedding, the final token-to-image attention that only updates the point
        # tokens): frozen, so that everything trainable receives a gradient.
        for module in (
            self.prompt_encoder.point_embeddings[0],
            self.prompt_encoder.point_embeddings[2],
            self.prompt_encoder.point_embeddings[3],
            self.prompt_encoder.no_mask_embed,
            self.transformer.final_attn_token_to_image,
            self.transformer.norm_final_attn,
        ):
            module.requires_grad_(False)
        cross = [
            a
            for layer in self.transformer.layers
            for a in (layer.cross_attn_token_to_image, layer.cross_attn_image_to_token)
        ]
        if len({(a.num_heads, a.internal_dim) for a in cross}) != 1:
            raise ValueError("the two-way layers' cross attentions differ in heads or width")
        last = self.prompt_encoder.mask_downscaling[-1]
        if not isinstance(last, nn.Conv2d) or last.kernel_size != (1, 1):
            raise ValueError("SAM's mask downscaling no longer ends in a 1x1 conv")
        # Head membership of each channel of the cross attentions (see sam_attention), rebuilt from the config.
        self.register_buffer("heads", head_blocks(cross[0].num_heads, cross[0].internal_dim), persistent=False)

    def sparse_embeddings(self, points: torch.Tensor) -> torch.Tensor:
        """points (N, K, 2) in [0, 1] -> (N, K + 1, dim): K positive points and SAM's pad point."""
        pe = self.prompt_encoder.pe_layer._pe_encoding(points)  # (N, K, dim)
        positive = pe + self.prompt_encoder.point_embeddings[1].weight
        pad = self.prompt_encoder.not_a_point_embed.weight.expand(points.shape[0], 1, -1)
        return torch.cat([positive, pad], dim=1)

    def dense_embeddings(self, mask: torch.Tensor) -> torch.Tensor:
        """mask (N, 1, 4h, 4w) -> (N, dim, h, w)."""
        return self.prompt_encoder.mask_downscaling(mask)

    def dense_tokens(self, mask: torch.Tensor) -> torch.Tensor:
        """``dense_embeddings`` channels-last: mask (N, 1, 4h, 4w) -> (N, h, w, dim). The last 1x1
        conv runs on the channels-last map of its few input channels, not on the wide output."""
        *head, last = self.prompt_encoder.mask_downscaling
        x = mask
        for layer in head:
            x = layer(x)  # (N, mask_in_chans, h, w) after the last one
        return pointwise(last, x.permute(0, 2, 3, 1))

    def tokens(self, points: torch.Tensor) -> torch.Tensor:
        """points (N, K, 2) -> SAM's decoder tokens (N, 1 + M + K + 1, dim): IoU token, M mask
        tokens, the K point tokens and the pad point (``MaskDecoder.predict_masks``' order)."""
        sparse = self.sparse_embeddings(points)
        if self.iou_token is None or self.mask_tokens is None:
            return sparse
        out = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)  # (1 + M, dim)
        return torch.cat([out.unsqueeze(0).expand(points.shape[0], -1, -1), sparse], dim=1)

    def forward(self, image: torch.Tensor, points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image (N, h, w, dim) channels-last, points (N, K, 2), mask (N, 1, 4h, 4w) -> (N, h, w, dim)."""
        n, h, w, c = image.shape
        sparse = self.tokens(points)
        pe = self.prompt_encoder.pe_layer((h, w))  # (dim, h, w)
        # TwoWayTransformer.forward without its final token-to-image attention, which only
        # updates the point tokens (unused here): the image side is the keys after the layers.
        keys = (image + self.dense_tokens(mask)).reshape(n, h * w, c)  # (N, h*w, dim)
        key_pe = pe.flatten(1).transpose(0, 1).unsqueeze(0)  # (1, h*w, dim)
        queries = sparse
        for layer in self.transformer.layers:
            queries, keys = two_way_layer(layer, queries, keys, sparse, key_pe, self.heads)
        return keys.reshape(n, h, w, c)
