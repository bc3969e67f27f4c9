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
from .cost_volume import CorrelationEmbed, correlation
from .decoder import UpsamplingDecoder
from .esc_block import ESCBlock, upsample_masks
from .prompt_map import PromptMap
from .pseudo_prompts import PseudoPromptGenerator
from .validation import check_class_names, check_images

CLIP_MEAN: tuple[float, float, float] = tuple(open_clip.OPENAI_DATASET_MEAN)
CLIP_STD: tuple[float, float, float] = tuple(open_clip.OPENAI_DATASET_STD)
TEXT_BATCH = 256  # texts per text-encoder call in embed_classes


class BlockInput(NamedTuple):
    """What an ESC block takes per chunk of Tc classes (``decode_open``, ``decode_attend``)."""

    state: torch.Tensor  # (B, Tc, C, h, w) correlation embedding entering the block
    scores: torch.Tensor  # (B, Tc, h, w) the block's prompt scores (float32)
    score_lse_part: torch.Tensor  # (B, h, w) log-sum-exp of the scores over these Tc classes


class BlockOutput(NamedTuple):
    """What an ESC block's per-class stages give per chunk of Tc classes (``decode_block``)."""

    state: torch.Tensor  # (B, Tc, C, h, w) the class attention's input
    kv_part: torch.Tensor  # (B, h*w, H, d, d) these classes' share of sum phi(k)^T v
    k_sum_part: torch.Tensor  # (B, h*w, H, d) their share of sum phi(k)


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
        self.blocks = nn.ModuleList([ESCBlock(c, k) for k in range(c.num_blocks)])
        # Block k + 1's prompt map reads block k's output (block 0 reads the CLIP cosine).
        self.prompt_maps = nn.ModuleList([PromptMap(c.corr_dim, c.prompt) for _ in range(c.num_blocks - 1)])
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
    # (each block's prompt-softmax normaliser and class-attention sums) pass between steps as
    # small per-pixel tensors. The runtime runs the same steps as separate graphs, in the order
    # open, block_0, attend_0, block_1, ..., block_{N-1}, close.
    def class_scores(self, dense: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """dense (B, D, h, w), text (Tc, P, D) -> correlation (B, P, Tc, h, w) and block 0's
        prompt scores (B, Tc, h, w): template-mean cosine times the temperature.

        Always float32, also under autocast: the pseudo prompts are discrete peaks of these
        scores, and fp16/bf16 rounding moves them (whole grid cells of error in the logits).
        """
        if _autocast_on(dense):
            with _without_autocast(dense):
                return self.class_scores(dense.float(), text.float())
        corr = correlation(dense, text)  # (B, P, Tc, h, w)
        return corr, corr.mean(dim=1) * self.config.prompt.temperature

    def decode_open(self, dense: torch.Tensor, text: torch.Tensor) -> BlockInput:
        """The cost embedding and block 0's prompt scores for Tc classes (text (Tc, P, D))."""
        corr, scores = self.class_scores(dense, text)
        return BlockInput(self.corr_embed(corr), scores, torch.logsumexp(scores, dim=1))

    def decode_block(
        self,
        index: int,
        state: torch.Tensor,
        dense: torch.Tensor,
        text: torch.Tensor,
        scores: torch.Tensor,
        score_lse: torch.Tensor,
    ) -> BlockOutput:
        """Block ``index``'s pseudo prompts and per-class stages for Tc classes, and its shares of
        the class-attention sums. state (B, Tc, C, h, w) the block's input, scores (B, Tc, h, w),
        score_lse (B, h, w) the log-sum-exp of the scores over *all* classes."""
        with _without_autocast(dense):  # float32 scores in, float32 prompts out (see class_scores)
            b, tc, h, w = scores.shape
            log_prob = scores.float() - score_lse.float().unsqueeze(1)  # (B, Tc, h, w): log-softmax, all classes
            p, m = self.prompts(log_prob.reshape(b * tc, h, w))  # (B*Tc, K, 2), (B*Tc, 1, h, w)
        points = p.reshape(b, tc, *p.shape[1:])  # (B, Tc, K, 2)
        masks = upsample_masks(m).reshape(b, tc, 1, 4 * h, 4 * w)  # (B, Tc, 1, 4h, 4w)
        block = self.blocks[index]
        state = block.per_class(state, dense, points, masks)
        return BlockOutput(state, *block.class_sums(state, self._text_guidance(text)))

    def decode_attend(
        self, index: int, state: torch.Tensor, text: torch.Tensor, kv: torch.Tensor, k_sum: torch.Tensor
    ) -> BlockInput:
        """Block ``index``'s class attention (kv, k_sum: its sums over all classes), then block
        ``index + 1``'s prompt scores from the refined correlation, for Tc classes."""
        x = self.blocks[index].class_attend(state, self._text_guidance(text), kv, k_sum)  # (B, Tc, C, h, w)
        with _without_autocast(x):
            scores = self.prompt_maps[index](x.float())  # (B, Tc, h, w)
        return BlockInput(x, scores, torch.logsumexp(scores, dim=1))

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
        x = self.blocks[-1].class_attend(state, self._text_guidance(text), kv, k_sum)  # (B, Tc, C, h, w)
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
        texts = [text[s:e] for s, e in class_spans(text.shape[0], chunk)]
        inputs = [self.decode_open(dense, t) for t in texts]
        for index in range(len(self.blocks)):
            lse = _logsumexp([i.score_lse_part for i in inputs])  # (B, h, w): over all classes
            outs = [
                self.decode_block(index, i.state, dense, t, i.scores, lse) for i, t in zip(inputs, texts, strict=True)
            ]
            kv, k_sum = _sum([o.kv_part for o in outs]), _sum([o.k_sum_part for o in outs])
            if index + 1 < len(self.blocks):
                inputs = [self.decode_attend(index, o.state, t, kv, k_sum) for o, t in zip(outs, texts, strict=True)]
        logits = [
            self.decode_close(o.state, t, kv, k_sum, guidance_a, guidance_b) for o, t in zip(outs, texts, strict=True)
        ]
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
    return torch.autocast(like.device.type, enabled=False) if _autocast_on(like) else contextlib.nullcontext()


def _autocast_on(like: torch.Tensor) -> bool:
    """Whether autocast is on for ``like``'s device (never for meta tensors: FLOP counting)."""
    return like.device.type != "meta" and torch.is_autocast_enabled(like.device.type)


def _sum(parts: list[torch.Tensor]) -> torch.Tensor:
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def _logsumexp(parts: list[torch.Tensor]) -> torch.Tensor:
    """Per-chunk log-sum-exps (each (B, h, w)) -> the log-sum-exp over all classes."""
    return parts[0] if len(parts) == 1 else torch.logsumexp(torch.stack(parts), dim=0)
