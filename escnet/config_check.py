"""Checks of an :class:`ESCNetConfig` before anything is allocated: types, ranges, consistency;
and :func:`config_from_dict`, which rebuilds a config from JSON values and checks it.

A config read from a checkpoint is untrusted input: ``vision_width=-5`` must not reach
``nn.Linear`` (a negative-dimension traceback) and ``vision_layers=10**9`` must not start
building layers. Upper bounds of sizes are far beyond any CLIP (ViT-bigG is 1664 wide, 48 deep)
and only stop absurd values; fields that cost work without weights are bounded by that cost
(``config_limits``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator
from typing import Any

from .config import ClipConfig, ESCNetConfig, FusionConfig, PromptConfig, SamConfig
from .config_limits import MAX_KMEANS_ITERS, MAX_OUTPUT_TOKENS, MAX_REGIONS, MAX_TEMPLATES, cost_problems
from .errors import ConfigError

MAX_WIDTH = 16384  # any channel count
MAX_DEPTH = 256  # any layer count, ESC blocks included
MAX_COUNT = 1_000_000  # vocabulary size, rank levels, class chunk
MAX_IMAGE = 8192  # image_size, context_length, patch and window sides
_SHOW = 3  # problems named in one error


_NESTED = {"clip": ClipConfig, "sam": SamConfig, "prompt": PromptConfig, "fusion": FusionConfig}


def config_from_dict(data: dict[str, Any]) -> ESCNetConfig:
    """Rebuild a config from :func:`escnet.config.config_to_dict`'s output; unknown or missing
    fields, wrong types and out-of-range values are a one-line :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a JSON object of fields, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(ESCNetConfig)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown config fields {sorted(unknown)}; expected a subset of {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name in _NESTED:
            value = _nested(name, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    if _required(ESCNetConfig) - set(kwargs):
        raise ConfigError(f"config fields missing: {sorted(_required(ESCNetConfig) - set(kwargs))}")
    return check_config(ESCNetConfig(**kwargs))


def _nested(name: str, value: Any) -> Any:
    cls = _NESTED[name]
    if not isinstance(value, dict):
        raise ConfigError(f"config.{name} must be an object of {cls.__name__} fields, got {type(value).__name__}")
    bad = set(value) - {f.name for f in dataclasses.fields(cls)}
    if bad:
        raise ConfigError(f"unknown {name} config fields {sorted(bad)}")
    if _required(cls) - set(value):
        raise ConfigError(f"config.{name} fields missing: {sorted(_required(cls) - set(value))}")
    return cls(**value)


def _required(cls: type) -> set[str]:
    return {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


def check_config(config: ESCNetConfig) -> ESCNetConfig:
    """``config`` unchanged, or one :class:`ConfigError` line naming the first problems."""
    if not isinstance(config, ESCNetConfig):
        raise ConfigError(f"config must be an ESCNetConfig, got {type(config).__name__}")
    problems = list(_type_problems(config, "config"))
    if not problems:
        problems = list(_value_problems(config))
    if problems:
        more = f" (+{len(problems) - _SHOW} more)" if len(problems) > _SHOW else ""
        raise ConfigError("invalid model config: " + "; ".join(problems[:_SHOW]) + more)
    return config


def _type_problems(obj: Any, where: str) -> Iterator[str]:
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint, name = getattr(obj, f.name), hints[f.name], f"{where}.{f.name}"
        if dataclasses.is_dataclass(hint):
            if isinstance(value, hint):
                yield from _type_problems(value, name)
            else:
                yield f"{name} must be an object of {hint.__name__} fields, got {type(value).__name__}"
        elif not _matches(value, hint):
            yield f"{name} = {_short(value)} is not {_describe(hint)}"


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if hint in (bool, str):
        return isinstance(value, hint)
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if isinstance(hint, type) else None
    return f"a finite {text}" if text == "float" else f"{text or hint}".replace("typing.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_BOUNDS = {
    **dict.fromkeys(
        ("clip.embed_dim", "clip.vision_width", "clip.vision_heads", "clip.text_width", "clip.text_heads"), MAX_WIDTH
    ),
    **dict.fromkeys(("clip.vision_layers", "clip.text_layers", "num_blocks", "sam.depth"), MAX_DEPTH),
    **dict.fromkeys(("clip.patch_size", "clip.context_length", "clip.pretrained_grid", "image_size"), MAX_IMAGE),
    **dict.fromkeys(("corr_kernel", "fusion.window"), MAX_IMAGE),
    **dict.fromkeys(("corr_dim", "sam.dim", "sam.heads", "sam.mlp_dim", "sam.attention_downsample"), MAX_WIDTH),
    **dict.fromkeys(("sam.mask_in_chans", "fusion.text_guidance_dim"), MAX_WIDTH),
    **dict.fromkeys(("fusion.swin_heads", "fusion.class_heads"), MAX_WIDTH),
    "fusion.swin_depth": MAX_DEPTH,
    **dict.fromkeys(("clip.vocab_size", "prompt.rank_levels"), MAX_COUNT),
    "sam.num_mask_tokens": MAX_OUTPUT_TOKENS,
    "prompt.num_regions": MAX_REGIONS,
    "prompt.kmeans_iters": MAX_KMEANS_ITERS,
}  # dotted field -> largest accepted value (the smallest is 1)


def _value_problems(c: ESCNetConfig) -> Iterator[str]:
    """Ranges first; sizes are compared (and costs estimated) only when every range holds."""
    problems = list(_range_problems(c))
    if not problems:
        problems = list(_consistency_problems(c))
    if not problems:
        problems = list(cost_problems(c))
    return iter(problems)


def _range_problems(c: ESCNetConfig) -> Iterator[str]:
    values = {name: _field(c, name) for name in _BOUNDS}
    bounds = dict(_BOUNDS)
    for i in range(2):
        for name in ("guidance_dims", "decoder_guidance_dims", "decoder_dims"):
            values[f"{name}[{i}]"], bounds[f"{name}[{i}]"] = getattr(c, name)[i], MAX_WIDTH
    values["templates (count)"], bounds["templates (count)"] = len(c.templates), MAX_TEMPLATES
    if c.class_chunk is not None:
        values["class_chunk"], bounds["class_chunk"] = c.class_chunk, MAX_COUNT
    for name, value in values.items():
        if not 1 <= value <= bounds[name]:
            yield f"{name} = {value} is not in 1..{bounds[name]}"


def _field(config: ESCNetConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _consistency_problems(c: ESCNetConfig) -> Iterator[str]:
    clip, sam, prompt, fusion = c.clip, c.sam, c.prompt, c.fusion
    divides = (
        ("clip.vision_heads", clip.vision_heads, "clip.vision_width", clip.vision_width),
        ("clip.text_heads", clip.text_heads, "clip.text_width", clip.text_width),
        ("clip.patch_size", clip.patch_size, "image_size", c.image_size),
        ("sam.heads", sam.heads, "sam.dim", sam.dim),
        ("sam.attention_downsample", sam.attention_downsample, "sam.dim", sam.dim),
        ("sam.heads", sam.heads, "sam.dim / sam.attention_downsample", sam.dim // sam.attention_downsample),
        ("fusion.swin_heads", fusion.swin_heads, "corr_dim", c.corr_dim),
        ("fusion.class_heads", fusion.class_heads, "corr_dim", c.corr_dim),
        ("fusion.window", fusion.window, "the grid (image_size / clip.patch_size)", c.image_size // clip.patch_size),
    )
    for small_name, small, big_name, big in divides:
        if big % small:
            yield f"{small_name} = {small} does not divide {big_name} = {big}"
    stages = (("corr_dim", c.corr_dim, 0), ("decoder_dims[0]", c.decoder_dims[0], 1))
    for name, width, i in stages:  # each upsampling stage makes width - guidance channels, then adds the guidance
        if width <= c.decoder_guidance_dims[i]:
            yield f"{name} = {width} must be larger than decoder_guidance_dims[{i}] = {c.decoder_guidance_dims[i]}"
    if c.corr_kernel % 2 == 0:
        yield f"corr_kernel = {c.corr_kernel} must be odd (same-size convolution)"
    bad_layers = [layer for layer in c.guidance_layers if not 0 <= layer < clip.vision_layers]
    if bad_layers:
        yield f"guidance_layers {c.guidance_layers} must be CLIP blocks 0..{clip.vision_layers - 1}"
    if not c.templates or any(t.count("{}") != 1 for t in c.templates):
        yield "templates must be a non-empty list of strings each with exactly one '{}'"
    if not 0.0 < prompt.alpha < 1.0:
        yield f"prompt.alpha = {prompt.alpha} is not in (0, 1)"
    if not 0.0 < prompt.temperature <= 1e6:
        yield f"prompt.temperature = {prompt.temperature} is not in (0, 1e6]"
    if not 0 <= fusion.shift < fusion.window:
        yield f"fusion.shift = {fusion.shift} is not in 0..window-1 ({fusion.window - 1})"
    if not 0.0 < prompt.mask_prob_eps < 0.5:
        yield f"prompt.mask_prob_eps = {prompt.mask_prob_eps} is not in (0, 0.5)"
    if not 0.0 < fusion.mlp_ratio <= 64:
        yield f"fusion.mlp_ratio = {fusion.mlp_ratio} is not in (0, 64]"
