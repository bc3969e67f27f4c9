"""Typed configuration of ESC-Net. Every *decided* choice of ``model.md`` is a field here.

Configs are frozen dataclasses: they are saved inside checkpoints as JSON and rebuilt with
:func:`escnet.config_check.config_from_dict` (which checks them; this module imports nothing of
it), never executed or built from string overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_TEMPLATES: tuple[str, ...] = ("A photo of a {} in the scene.",)


@dataclass(frozen=True)
class ClipConfig:
    """The CLIP towers, in open_clip's terms (``open_clip.get_model_config`` for real presets)."""

    model_name: str  # open_clip architecture name, e.g. "ViT-B-16"; used for pretrained tags
    embed_dim: int  # joint image-text space D
    vision_width: int
    vision_layers: int
    vision_heads: int
    patch_size: int
    text_width: int
    text_heads: int
    text_layers: int
    context_length: int = 77
    vocab_size: int = 49408
    quick_gelu: bool = True  # OpenAI weights were trained with QuickGELU
    pretrained_grid: int = 14  # grid of the upstream position embedding (224 / patch)


@dataclass(frozen=True)
class SamConfig:
    """SAM prompt encoder + two-way transformer (the ViT-B checkpoint's mask decoder)."""

    dim: int = 256
    heads: int = 8
    mlp_dim: int = 2048
    depth: int = 2  # two-way blocks per ESC block (SAM's mask decoder has 2)
    attention_downsample: int = 2
    mask_in_chans: int = 16
    # SAM's own token layout: the checkpoint's IoU token and mask tokens (mask_decoder.iou_token /
    # mask_tokens; SAM has 3 multimask outputs + 1 = 4 mask tokens) ahead of the point tokens.
    output_tokens: bool = True
    num_mask_tokens: int = 4
    # Image side: CLIP features projected to ``dim`` and LayerNorm'd per pixel, as SAM's image
    # encoder neck leaves its output (LayerNorm2d). Adding the class's correlation embedding as
    # well is a decided option, not the paper's default ("The SAM block aggregates the CLIP image features").
    normalise_image: bool = True
    add_correlation: bool = False


@dataclass(frozen=True)
class PromptConfig:
    """Pseudo prompt generator (no gradient, tensor arithmetic only)."""

    alpha: float = 0.5  # decided: foreground = class probability above alpha
    num_regions: int = 5  # N_o k-means regions = positive points per class
    kmeans_iters: int = 10  # fixed iteration count (exportable)
    temperature: float = 100.0  # decided: scale of the cosine correlation before the class softmax
    probability: Literal["softmax"] = "softmax"  # decided: softmax over classes per pixel
    # Peak pixels are chosen on probabilities rounded to steps of 1/rank_levels, ties going to the
    # first pixel in raster order: a saturated class has many pixels at 1.0 - 1 ulp, and float
    # rounding (another backend, chunked classes, fp16) must not decide which one is the peak.
    rank_levels: int = 1024
    # Block k > 0's per-class map, from block k-1's refined correlation embedding (B, T, C, h, w):
    # "learned" = a 1x1 projection C -> 1 per block, "mean" = the channel mean (decided; model.md 4a).
    map_head: Literal["learned", "mean"] = "learned"
    # The mask prompt is SAM's kind of mask input, logits: logit(p) of the class probability p,
    # with p clamped to [eps, 1 - eps] (logits within +-4.6 at 0.01). Unclamped, logit(p) of a
    # saturated class divides by 1 - p, which float rounding of the softmax normaliser (another
    # chunking of the classes, another backend) moves by whole units; the clamp bounds that.
    mask_prob_eps: float = 0.01


@dataclass(frozen=True)
class FusionConfig:
    """Vision-language fusion: a Swin pair over the grid, linear attention over classes."""

    window: int = 12
    shift: int = 6
    swin_heads: int = 4
    # Swin blocks per ESC block; regular and shifted windows alternate across the whole model
    # (see ESCNetConfig for the layout chosen; 2 = a full Swin pair per block, the earlier layout).
    swin_depth: int = 1
    class_heads: int = 4
    mlp_ratio: float = 4.0
    text_guidance_dim: int = 128  # projected text embedding joined to query and key
    # Image guidance in the Swin blocks: "query_key" = CAT-Seg's aggregator (LayerNorm'd guidance
    # concatenated into query and key only); "residual" = the earlier design (added to the input).
    image_guidance: Literal["query_key", "residual"] = "query_key"


@dataclass(frozen=True)
class ESCNetConfig:
    """ESC-Net's configuration. The layout, chosen for the paper's cost (model.md, "The paper's
    cost is part of the design": ESC-Net / a CAT-Seg equivalent from the same modules <= 1.10):

    N = 2 ESC blocks (``num_blocks``), each: the pseudo prompts from the block's own map (block 1's
    from a learned 1x1 head on block 0's refined correlation, ``prompt.map_head="learned"``),
    the whole 2-layer two-way transformer of SAM's mask decoder (``sam.depth=2``: every
    pretrained layer of the checkpoint, which the paper's ablation says is what makes the model
    work), ONE Swin block (``fusion.swin_depth=1``; block 0 regular windows, block 1 shifted:
    one CAT-Seg Swin pair over the two blocks) with the guidance in query and key, and the class
    attention. Each ESC block thus replaces one CAT-Seg aggregator layer, spending the second
    Swin block's cost on SAM.

    Counted by ``escnet-info`` (torch's FlopCounterMode on a meta-device twin, 150 classes, one
    template, text encoder included; vit-b16): decoder 441.0 GFLOPs vs the CAT-Seg equivalent's
    402.8 (1.095x; image encoder 111.8, text encoder 893.9 in both): single view 1446.7 vs
    1408.5 GFLOPs = 1.027x, sliding window (5 views) 3657.9 vs 3466.6 = 1.055x. Alternatives,
    decoder GFLOPs at 150 classes (counted before the SAM first-layer fold of
    ``SharedImageKeys``, which saves ~15 per 2-layer SAM block; single view / sliding ratio):
    N=2, 1-layer SAM, Swin pair: 499 (1.069 / 1.139); N=2, 2-layer SAM, Swin pair (each block
    a full CAT-Seg layer + SAM): 570 (1.116 / 1.231); N=3, 1-layer SAM, one Swin: 537
    (1.093 / 1.188); the earlier layout (N=4, Swin pairs, ``presets.heavier_layout``): 991.
    """

    preset: str
    clip: ClipConfig
    image_size: int = 384  # S; the grid is S / patch_size
    guidance_layers: tuple[int, int] = (3, 7)  # 0-based CLIP blocks feeding the decoder guidance
    guidance_dims: tuple[int, int] = (256, 128)  # channels at 2x and 4x the grid
    decoder_guidance_dims: tuple[int, int] = (32, 16)  # guidance projected inside the decoder
    decoder_dims: tuple[int, int] = (64, 32)  # channels after each upsampling stage
    corr_dim: int = 128  # cost-volume embedding width C
    corr_kernel: int = 7  # P -> C embedding conv
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    num_blocks: int = 2  # decided: ESC blocks (the layout: see the class docstring)
    sam: SamConfig = field(default_factory=SamConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    class_chunk: int | None = 32  # classes per decoder call (the runtime's default too); None = all at once

    @property
    def grid(self) -> int:
        return self.image_size // self.clip.patch_size

    @property
    def num_templates(self) -> int:
        return len(self.templates)

    def replace(self, **changes: Any) -> ESCNetConfig:
        return dataclasses.replace(self, **changes)


def config_to_dict(config: ESCNetConfig) -> dict[str, Any]:
    """The config as plain JSON-ready values; :func:`escnet.config_check.config_from_dict` rebuilds it."""
    return dataclasses.asdict(config)
