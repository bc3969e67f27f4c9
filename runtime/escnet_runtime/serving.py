"""Serving one model to many clients (the Triton Python model's logic, without Triton).

A request is an image (H, W, 3) uint8 and a vocabulary (class names; none: the vocabulary the
server was configured with); the answer is its labels (H, W) int32 and the class names in label
order. Requests that share a vocabulary are segmented together, in batches of up to
``batch_size`` images; every request fails or succeeds on its own, with a one-line error.

Text travels as UTF-8 bytes, one class name per line (``encode_names`` / ``decode_names``), in
UINT8 tensors: tritonserver 2.51's Python-backend stub cannot exchange BYTES tensors with NumPy 2
(README, "Serving"), and a list of names in one UTF-8 buffer needs no string tensors at all.

The only state kept between requests is the text-embedding cache (and the last vocabulary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from escnet_runtime.errors import InputError
from escnet_runtime.image_io import DEFAULT_MAX_PIXELS
from escnet_runtime.preprocess import check_image
from escnet_runtime.segmenter import Segmenter
from escnet_runtime.vocabulary import check_class_names

IMAGE_INPUT = "image"  # the request's tensor names (the Triton model's inputs)
DEFAULT_MAX_CLASSES = 1024  # per request; a larger vocabulary is configured in the repository instead
MAX_NAMES_BYTES = 1 << 20  # the UTF-8 class list of one request


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for; beyond it the request gets an error, the server goes on."""

    max_classes: int = DEFAULT_MAX_CLASSES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_names_bytes: int = MAX_NAMES_BYTES


@dataclass
class ServeRequest:
    """images (B, H, W, 3) uint8; names: None for the configured vocabulary."""

    images: np.ndarray
    names: tuple[str, ...] | None


@dataclass
class ServeResult:
    """labels (B, H, W) int32 and the class names in label order, or a one-line error."""

    labels: np.ndarray | None = None
    names: tuple[str, ...] = ()
    error: str | None = None


def encode_names(names: Sequence[str]) -> np.ndarray:
    """Class names -> (n,) uint8: UTF-8, one name per line."""
    if any("\n" in n for n in names):
        raise InputError("a class name contains a line break")
    return np.frombuffer("\n".join(names).encode("utf-8"), dtype=np.uint8).copy()


def decode_names(data: np.ndarray, limit: int = MAX_NAMES_BYTES) -> tuple[str, ...]:
    """(n,) uint8 UTF-8, one name per line -> names (empty: none given)."""
    if data.dtype != np.uint8 or data.ndim != 1:
        raise InputError(f"classes must be a 1-D UINT8 tensor of UTF-8 text, got {data.dtype} {data.shape}")
    if data.size > limit:
        raise InputError(f"the class list is {data.size} bytes, over the limit of {limit}")
    try:
        text = data.tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"the class list is not UTF-8 ({e.reason} at byte {e.start})") from None
    return tuple(line.strip() for line in text.split("\n")) if text.strip() else ()


def check_images(images: object, limits: ServeLimits) -> np.ndarray:
    """A request's images as (B, H, W, 3) uint8, or a one-line InputError (no path, no traceback).

    Integer tensors wider than UINT8 are taken when every value is 0..255 (a repository may
    declare a wider type so that out-of-range JSON values arrive unwrapped and are refused here).
    """
    if images is None:
        raise InputError(f"the request has no {IMAGE_INPUT!r} input; expected UINT8 images [B, H, W, 3]")
    if not isinstance(images, np.ndarray):
        raise InputError(f"{IMAGE_INPUT} must be a UINT8 tensor [B, H, W, 3], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"{IMAGE_INPUT} must be UINT8 images [B, H, W, 3], got shape {list(images.shape)}")
    b, h, w, _ = images.shape
    if b < 1 or h < 1 or w < 1:
        raise InputError(f"{IMAGE_INPUT} is empty (shape {list(images.shape)})")
    if h * w > limits.max_pixels:
        raise InputError(f"{IMAGE_INPUT} is {w}x{h}, over the limit of {limits.max_pixels} pixels")
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.bool_ or not np.issubdtype(images.dtype, np.integer):
        raise InputError(f"{IMAGE_INPUT} must be UINT8 (0..255), got {images.dtype}")
    low, high = int(images.min()), int(images.max())
    if low < 0 or high > 255:
        raise InputError(f"{IMAGE_INPUT} values must be 0..255 (UINT8), got {low if low < 0 else high}")
    return images.astype(np.uint8)


def check_request(req: ServeRequest, limits: ServeLimits, default: tuple[str, ...]) -> tuple[str, ...]:
    """The vocabulary a valid request is segmented with (``req.images`` checked and made uint8);
    InputError (one line) otherwise."""
    req.images = check_images(req.images, limits)
    for image in req.images:
        check_image(image)
    names = req.names or default
    if not names:
        raise InputError("no classes given and the repository configures no vocabulary")
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise InputError("classes must be a list of class names (UTF-8 text, one name per line)")
    if len(names) > limits.max_classes:
        raise InputError(f"{len(names)} classes in one request; at most {limits.max_classes} are served")
    return tuple(check_class_names(list(names)))


@dataclass
class ServingPipeline:
    """A Segmenter serving requests; ``vocabulary``: the classes used when a request names none."""

    segmenter: Segmenter
    vocabulary: tuple[str, ...] = ()
    limits: ServeLimits = field(default_factory=ServeLimits)

    def __call__(self, requests: Sequence[ServeRequest]) -> list[ServeResult]:
        """One result per request, in order; requests with the same vocabulary share batches."""
        results = [ServeResult() for _ in requests]
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, req in enumerate(requests):
            try:
                groups.setdefault(check_request(req, self.limits, self.vocabulary), []).append(i)
            except InputError as e:
                results[i].error = str(e)
            except (AttributeError, TypeError, ValueError) as e:  # a malformed request: one line, no path
                results[i].error = f"unreadable request ({type(e).__name__})"
        for names, members in groups.items():
            try:
                self._segment_group(names, [requests[i] for i in members], [results[i] for i in members])
            except InputError as e:
                for i in members:
                    results[i].error = str(e)
        return results

    def _segment_group(self, names: tuple[str, ...], reqs: list[ServeRequest], out: list[ServeResult]) -> None:
        if self.segmenter.class_names != names:
            self.segmenter.set_vocabulary(list(names))  # embeddings from the text cache when seen before
        images = [img for req in reqs for img in req.images]
        segmented = self.segmenter.segment(images)
        assert isinstance(segmented, list)
        start = 0
        for req, res in zip(reqs, out, strict=True):
            part = segmented[start : start + len(req.images)]
            start += len(req.images)
            res.labels = np.stack([r.labels.astype(np.int32, copy=False) for r in part])  # (B, H, W)
            res.names = names
