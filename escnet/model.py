"""ESC-Net: CLIP cost volume refined by ESC blocks (SAM prompt encoder + two-way transformer)."""

from __future__ import annotations

import contextlib
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
from .config_check import check_config
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
        self.config = check_config(config)  # before anything is allocated
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
    # ``decode`` runs in steps that each take a chunk of classes; the only sums over classes
    # (the prompt softmax's normaliser and each block's class-attention sums) pass between
    # steps as small per-pixel tensors. The runtime runs the same steps as separate graphs.
    def class_scores(self, dense: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """dense (B, D, h, w), text (Tc, P, D) -> correlation (B, P, Tc, h, w) and the prompt
        generator's class scores (B, Tc, h, w): template-mean cosine times the temperature.

        Always float32, also under autocast: the pseudo prompts are discrete peaks of these
        scores, and fp16/bf16 rounding moves them (whole grid cells of error in the logits).
        """
        if torch.is_autocast_enabled(dense.device.type):
            with _without_autocast(dense):
                return self.class_scores(dense.float(), text.float())
        corr = correlation(dense, text)  # (B, P, Tc, h, w)
        return corr, corr.mean(dim=1) * self.config.prompt.temperature

    def score_logsumexp(self, dense: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """log-sum-exp over these classes of the class scores: (B, h, w). Chunks combine by
        log-sum-exp again; over all T it is the prompt softmax's normaliser."""
        return torch.logsumexp(self.class_scores(dense, text)[1], dim=1)

    def decode_open(
        self, dense: torch.Tensor, text: torch.Tensor, score_lse: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cost embedding, pseudo prompts and block 0's per-class stages for Tc classes.

        dense (B, D, h, w), text (Tc, P, D), score_lse (B, h, w) over *all* classes ->
        state (B, Tc, C, h, w), points (B, Tc, K, 2), masks (B, Tc, 1, 4h, 4w),
        and block 0's class-attention shares kv (B, h*w, H, d, d), k_sum (B, h*w, H, d).
        """
        b, _, h, w = dense.shape
        tc = text.shape[0]
        corr, scores = self.class_scores(dense, text)
        x = self.corr_embed(corr)  # (B, C, Tc, h, w)
        with _without_autocast(dense):  # float32 scores in, float32 prompts out (see class_scores)
            prob = torch.exp(scores - score_lse.unsqueeze(1))  # (B, Tc, h, w): softmax over all classes
            p, m = self.prompts(prob.reshape(b * tc, h, w))  # (B*Tc, K, 2), (B*Tc, 1, h, w)
        points = p.reshape(b, tc, *p.shape[1:])  # (B, Tc, K, 2)
        masks = upsample_masks(m).reshape(b, tc, 1, 4 * h, 4 * w)  # (B, Tc, 1, 4h, 4w)
        block = self.blocks[0]
        state = block.per_class(x, dense, points, masks)
        return state, points, masks, *block.class_sums(state, self._text_guidance(text))

    def decode_block(
        self,
        index: int,
        state: torch.Tensor,
        dense: torch.Tensor,
        text: torch.Tensor,
        points: torch.Tensor,
        masks: torch.Tensor,
        kv: torch.Tensor,
        k_sum: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Block ``index - 1``'s class attention, then block ``index``'s per-class stages, for Tc classes.

        state (B, Tc, C, h, w) from the previous step; kv, k_sum: block ``index - 1``'s sums
        over all classes -> the new state and block ``index``'s shares of its sums.
        """
        text_g = self._text_guidance(text)
        x = self.blocks[index - 1].class_attend(state, text_g, kv, k_sum)  # (B, C, Tc, h, w)
        block = self.blocks[index]
        state = block.per_class(x, dense, points, masks)
        return state, *block.class_sums(state, text_g)

    def decode_close(
        self,
        state: torch.Tensor,
        text: torch.Tensor,
        kv: torch.Tensor,
        k_sum: torch.Tensor,
        guidance_a: torch.Tensor,
        guidance_b: torch.Tensor,
    ) -> torch.Tensor:
        """The last block's class attention and the upsampling decoder -> logits (B, Tc, 4h, 4w)."""
        x = self.blocks[-1].class_attend(state, self._text_guidance(text), kv, k_sum)  # (B, C, Tc, h, w)
        guid_a, guid_b = self.decoder.project_guidance(guidance_a, guidance_b)
        return self.decoder(x, guid_a, guid_b)

    def _text_guidance(self, text: torch.Tensor) -> torch.Tensor:
        """(Tc, P, D) -> projected text guidance (Tc, G)."""
        return self.text_guidance(text.mean(dim=1))

    def decode(
        self,
        dense: torch.Tensor,
        guidance_a: torch.Tensor,
        guidance_b: torch.Tensor,
        text: torch.Tensor,
        class_chunk: int | None = -1,
    ) -> torch.Tensor:
        """Image features + text embeddings (T, P, D) -> logits (B, T, 4g, 4g).

        ``class_chunk``: classes per chunk (-1: the config's value, None: all classes at once).
        Every chunk size gives the same logits; memory beyond the per-class state is bounded
        by the chunk.
        """
        chunk = self.config.class_chunk if class_chunk == -1 else class_chunk
        spans = class_spans(text.shape[0], chunk)
        texts = [text[s:e] for s, e in spans]
        lse = _logsumexp([self.score_logsumexp(dense, t) for t in texts])  # (B, h, w)
        opened = [self.decode_open(dense, t, lse) for t in texts]
        states = [o[0] for o in opened]
        points, masks = [o[1] for o in opened], [o[2] for o in opened]
        kv, k_sum = _sum([o[3] for o in opened]), _sum([o[4] for o in opened])
        for index in range(1, len(self.blocks)):
            steps = [
                self.decode_block(index, st, dense, t, p, m, kv, k_sum)
                for st, t, p, m in zip(states, texts, points, masks, strict=True)
            ]
            states = [s[0] for s in steps]
            kv, k_sum = _sum([s[1] for s in steps]), _sum([s[2] for s in steps])
        pairs = zip(states, texts, strict=True)
        logits = [self.decode_close(st, t, kv, k_sum, guidance_a, guidance_b) for st, t in pairs]
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


def _without_autocast(like: torch.Tensor) -> contextlib.AbstractContextManager[None]:
    """Autocast switched off on ``like``'s device where it is on; otherwise nothing (export, fp32)."""
    device = like.device.type
    return torch.autocast(device, enabled=False) if torch.is_autocast_enabled(device) else contextlib.nullcontext()


def _sum(parts: list[torch.Tensor]) -> torch.Tensor:
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def _logsumexp(parts: list[torch.Tensor]) -> torch.Tensor:
    """Per-chunk log-sum-exps (each (B, h, w)) -> the log-sum-exp over all classes."""
    return parts[0] if len(parts) == 1 else torch.logsumexp(torch.stack(parts), dim=0)
