"""Input checks: one line saying what was wrong and what was expected."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from .errors import ESCNetInputError


def check_images(images: object, min_size: int) -> torch.Tensor:
    """images must be a float tensor (B, 3, H, W), H and W multiples of 4 and >= min_size, finite."""
    if not isinstance(images, torch.Tensor):
        raise ESCNetInputError(f"images must be a torch.Tensor of shape (B, 3, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ESCNetInputError(f"images must have 4 dimensions (B, 3, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] != 3:
        raise ESCNetInputError(f"images must have 3 channels (RGB) in dim 1, got {images.shape[1]}")
    if not images.is_floating_point():
        raise ESCNetInputError(
            f"images must be a floating-point tensor normalised with CLIP's mean/std, got {images.dtype}"
        )
    b, _, h, w = images.shape
    if b == 0:
        raise ESCNetInputError("images is an empty batch (B = 0); expected at least one image")
    if h < min_size or w < min_size or h % 4 or w % 4:
        raise ESCNetInputError(
            f"image size {h}x{w} is not supported; expected height and width >= {min_size} and divisible by 4"
        )
    if not bool(torch.isfinite(images).all()):
        raise ESCNetInputError("images contain NaN or Inf values; expected finite pixels")
    return images


# Twin of escnet_runtime.vocabulary.check_class_names: escnet and the runtime may not import each other.
MAX_CLASSES = 65535  # labels are written as 16-bit PNGs beyond 256 classes
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # no class name holds one; a legend line could not show it


def check_class_names(names: object) -> list[str]:
    """A non-empty list of distinct (case- and space-insensitive), non-blank strings without control characters."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ESCNetInputError("class names must be a list of strings, e.g. ['cat', 'sky']")
    names = list(names)
    if not names:
        raise ESCNetInputError("the class list is empty; expected at least one class name")
    if len(names) > MAX_CLASSES:
        raise ESCNetInputError(f"{len(names)} class names; at most {MAX_CLASSES} are supported")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ESCNetInputError(f"class name {i + 1} is {name!r}; expected a non-blank string")
        if _CONTROL.search(name):
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise ESCNetInputError(
                f"class name {i + 1} {shown!r} holds a control character (a line break, tab, ...); "
                "give one name per line in --classes-file, or separate them with commas"
            )
        key = name.strip().lower()
        if key in seen:
            raise ESCNetInputError(
                f"duplicate class name {name!r} (names {seen[key] + 1} and {i + 1}); expected distinct names"
            )
        seen[key] = i
    return names
