"""Model presets: plain functions in a dict, each returning an :class:`ESCNetConfig`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .config import DEFAULT_TEMPLATES, ClipConfig, ESCNetConfig, FusionConfig, PromptConfig, SamConfig


def _clip_from_open_clip(name: str) -> ClipConfig:
    """Read the architecture from open_clip's own model config (not retyped here)."""
    import open_clip

    cfg = open_clip.get_model_config(name)
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    width = vision["width"]
    return ClipConfig(
        model_name=name,
        embed_dim=cfg["embed_dim"],
        vision_width=width,
        vision_layers=vision["layers"],
        vision_heads=width // vision.get("head_width", 64),
        patch_size=vision["patch_size"],
        text_width=text["width"],
        text_heads=text["heads"],
        text_layers=text["layers"],
        context_length=text["context_length"],
        vocab_size=text["vocab_size"],
        pretrained_grid=vision["image_size"] // vision["patch_size"],
    )


def vit_b16() -> ESCNetConfig:
    """ViT-B/16 CLIP at 384 (24x24 grid), guidance from blocks 3 and 7."""
    return ESCNetConfig(preset="vit-b16", clip=_clip_from_open_clip("ViT-B-16"), image_size=384, guidance_layers=(3, 7))


def vit_l14() -> ESCNetConfig:
    """ViT-L/14 CLIP at 336 (24x24 grid), guidance from blocks 7 and 15."""
    return ESCNetConfig(
        preset="vit-l14", clip=_clip_from_open_clip("ViT-L-14"), image_size=336, guidance_layers=(7, 15)
    )


def tiny() -> ESCNetConfig:
    """Same structure at a few MB, for fast tests: 128 px, 8x8 grid, narrow everything."""
    clip = ClipConfig(
        model_name="tiny",
        embed_dim=32,
        vision_width=64,
        vision_layers=4,
        vision_heads=2,
        patch_size=16,
        text_width=32,
        text_heads=2,
        text_layers=2,
        pretrained_grid=4,
    )
    return ESCNetConfig(
        preset="tiny",
        clip=clip,
        image_size=128,
        guidance_layers=(1, 2),
        guidance_dims=(32, 16),
        decoder_guidance_dims=(8, 4),
        decoder_dims=(16, 8),
        corr_dim=32,
        num_blocks=2,
        sam=SamConfig(dim=32, heads=2, mlp_dim=64, depth=2, attention_downsample=2, mask_in_chans=16),
        prompt=PromptConfig(),
        fusion=FusionConfig(window=4, shift=2, swin_heads=2, class_heads=2, text_guidance_dim=32),
        class_chunk=32,
    )


def heavier_layout(config: ESCNetConfig) -> ESCNetConfig:
    """The earlier, heavier layout, for ablation: 4 ESC blocks, each with a full Swin pair and the
    image guidance added to the Swin input (about 1.37x the CAT-Seg equivalent's FLOPs at 150 classes)."""
    return config.replace(
        num_blocks=4, fusion=dataclasses.replace(config.fusion, swin_depth=2, image_guidance="residual")
    )


def imagenet_templates() -> tuple[str, ...]:
    """CLIP's 80 ImageNet prompt templates (from open_clip), as ``{}`` format strings."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)


def with_templates(config: ESCNetConfig, templates: str | tuple[str, ...]) -> ESCNetConfig:
    """The config with another template set: "default" (one), "imagenet" (80) or explicit strings."""
    if templates == "imagenet":
        templates = imagenet_templates()
    elif templates == "default":
        templates = DEFAULT_TEMPLATES
    if not templates or any(not isinstance(t, str) or t.count("{}") != 1 for t in templates):
        raise ValueError("templates must be 'default', 'imagenet' or strings each with exactly one '{}'")
    return config.replace(templates=tuple(templates))


PRESETS: dict[str, Callable[[], ESCNetConfig]] = {"vit-b16": vit_b16, "vit-l14": vit_l14, "tiny": tiny}


def get_config(preset: str) -> ESCNetConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[preset]()
