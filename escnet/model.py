"""ESC-Net: CLIP cost volume refined by ESC blocks (SAM prompt encoder + two-way transformer)."""

from __future__ import annotations

from typing import NamedTuple

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer
from torch import nn

from .chunks import class_spans
from .clip_image import GuidanceUpsampler, clip_dense_features
from .config import ESCNetConfig
from .cost_volume import CorrelationEmbed, correlation
from .decoder import UpsamplingDecoder
from .esc_block import ESCBlock, upsample_masks
from .pseudo_prompts import PseudoPromptGenerator
from .validation import check_class_names, check_images

CLIP_MEAN: tuple[float, float, float] = tuple(open_clip.OPENAI_DATASET_MEAN)
CLIP_STD: tuple[float, float, float] = tuple(open_clip.OPENAI_DATASET_STD)
TEXT_BATCH = 256  # texts per text-encoder call in embed_classes


class ImageFeatures(NamedTuple):
    """What the image encoder graph returns."""

    dense: torch.Tensor  # (B, D, g, g) CLIP dense features
    guidance_a: torch.Tensor  # (B, Ga, 2g, 2g)
    guidance_b: torch.Tensor  # (B, Gb, 4g, 4g)


def build_clip(config: ESCNetConfig) -> open_clip.model.CLIP:
    """open_clip's CLIP at the preset's image size (position embedding on the g x g grid)."""
    c = config.clip
    vision = CLIPVisionCfg(
        layers=c.vision_layers,
        width=c.vision_width,
        head_width=c.vision_width // c.vision_heads,
        patch_size=c.patch_size,
        image_size=config.image_size,
    )
    text = CLIPTextCfg(
        context_length=c.context_length,
        vocab_size=c.vocab_size,
        width=c.text_width,
        heads=c.text_heads,
        layers=c.text_layers,
    )
    return open_clip.model.CLIP(c.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=c.quick_gelu)


class ESCNet(nn.Module):
    """Open-vocabulary segmentation. One method per exported graph:
    ``encode_image``, ``encode_text``, ``decode``; ``forward`` composes them."""

    def __init__(self, config: ESCNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.clip = build_clip(c)
        self.clip.logit_scale.requires_grad_(False)  # contrastive temperature: unused for segmentation
        self.guidance = GuidanceUpsampler(c.clip.vision_width, c.guidance_dims)
        self.corr_embed = CorrelationEmbed(c.num_templates, c.corr_dim, c.corr_kernel)
        self.text_guidance = nn.Linear(c.clip.embed_dim, c.fusion.text_guidance_dim)
        self.prompts = PseudoPromptGenerator(c.prompt)
        self.blocks = nn.ModuleList([ESCBlock(c) for _ in range(c.num_blocks)])
        self.decoder = UpsamplingDecoder(c.corr_dim, c.guidance_dims, c.decoder_guidance_dims, c.decoder_dims)
        self.tokenizer = SimpleTokenizer(context_length=c.clip.context_length)

    # -- graph 1: image encoder -------------------------------------------------------------
    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """images (B, 3, S, S), CLIP-normalised -> ImageFeatures."""
        dense, tokens_a, tokens_b = clip_dense_features(self.clip.visual, images, self.config.guidance_layers)
        guid_a, guid_b = self.guidance(tokens_a, tokens_b)
        return ImageFeatures(dense, guid_a, guid_b)

    # -- graph 2: text encoder --------------------------------------------------------------
    def encode_text(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids (N, 77) int64 -> L2-normalised embeddings (N, D)."""
        return self.clip.encode_text(token_ids, normalize=True)

    def tokenize(self, class_names: list[str]) -> torch.Tensor:
        """Every class through every template: (T * P, context_length) int64, class-major."""
        texts = [tpl.format(name) for name in class_names for tpl in self.config.templates]
        return self.tokenizer(texts)

    def embed_classes(self, class_names: list[str]) -> torch.Tensor:
        """class names -> normalised text embeddings (T, P, D). Independent of the image."""
        names = check_class_names(class_names)
        tokens = self.tokenize(names).to(self.clip.positional_embedding.device)
        parts = [self.encode_text(tokens[i : i + TEXT_BATCH]) for i in range(0, len(tokens), TEXT_BATCH)]
        emb = torch.cat(parts)  # (T*P, D)
        return emb.reshape(len(names), self.config.num_templates, -1)  # (T, P, D)

    # -- graph 3: prompt + decoder ----------------------------------------------------------
    def decode(
        self,
        dense: torch.Tensor,
        guidance_a: torch.Tensor,
        guidance_b: torch.Tensor,
        text: torch.Tensor,
        class_chunk: int | None = -1,
    ) -> torch.Tensor:
        """Image features + text embeddings (T, P, D) -> logits (B, T, 4g, 4g).

        ``class_chunk``: classes per chunk in the per-class stages (-1: the config's value,
        None: all classes at once). Every chunk size gives the same logits.
        """
        chunk = self.config.class_chunk if class_chunk == -1 else class_chunk
        b, _, h, w = dense.shape
        t = text.shape[0]
        corr = correlation(dense, text)  # (B, P, T, h, w)
        x = self.corr_embed(corr)  # (B, C, T, h, w)

        # Pseudo prompts from the class probabilities of the correlation (no gradient).
        prob = torch.softmax(corr.mean(dim=1) * self.config.prompt.temperature, dim=1)  # (B, T, h, w)
        points, masks = [], []
        for s, e in class_spans(t, chunk):
            p, m = self.prompts(prob[:, s:e].reshape(-1, h, w))  # (B*Tc, K, 2), (B*Tc, 1, h, w)
            points.append(p.reshape(b, e - s, *p.shape[1:]))
            masks.append(upsample_masks(m).reshape(b, e - s, 1, 4 * h, 4 * w))
        point_t = torch.cat(points, dim=1)  # (B, T, K, 2)
        mask_t = torch.cat(masks, dim=1)  # (B, T, 1, 4h, 4w)

        text_g = self.text_guidance(text.mean(dim=1))  # (T, G)
        for block in self.blocks:
            x = block(x, dense, point_t, mask_t, text_g, chunk)

        guid_a, guid_b = self.decoder.project_guidance(guidance_a, guidance_b)
        logits = [self.decoder(x[:, :, s:e], guid_a, guid_b) for s, e in class_spans(t, chunk)]
        return torch.cat(logits, dim=1) if len(logits) > 1 else logits[0]  # (B, T, 4h, 4w)

    def forward(self, images: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        """images (B, 3, H, W) CLIP-normalised, any H, W divisible by 4 -> logits (B, T, H/4, W/4).

        Images are resized to S x S (bilinear) for the network and the logits resized back.
        """
        images = check_images(images, min_size=self.config.clip.patch_size)
        text = self.embed_classes(class_names)
        h, w = images.shape[-2:]
        size = self.config.image_size
        x = (
            images
            if (h, w) == (size, size)
            else F.interpolate(images, (size, size), mode="bilinear", align_corners=False)
        )
        logits = self.decode(*self.encode_image(x), text)
        if logits.shape[-2:] != (h // 4, w // 4):
            logits = F.interpolate(logits, (h // 4, w // 4), mode="bilinear", align_corners=False)
        return logits
