"""The pipeline: ``Segmenter(artifacts, backend).set_vocabulary(names).segment(image)``.

Numerically the reference in escnet/inference.py: normalise at the image's size, resize each
view, run the image encoder and the decoder, upsample logits to S, sigmoid, average windows
(sliding window), upsample to the image's size, arg-max over classes.

The decoder runs all T classes in one call of the ``decoder`` graph when T is at most the class
chunk, and otherwise as its step graphs over chunks of classes (``ChunkedDecoder``), so that
its memory stays bounded for vocabularies of any size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from escnet_runtime.backends import Backend, create_backend
from escnet_runtime.cache import ModelIdentity, TextEmbeddingCache, default_cache_dir
from escnet_runtime.chunked_decoder import ChunkedDecoder
from escnet_runtime.contract import (
    CLASS_EMBEDDINGS,
    DECODER,
    DEFAULT_CLASS_CHUNK,
    IMAGE,
    IMAGE_ENCODER,
    LOGITS,
    TEXT_ENCODER,
)
from escnet_runtime.errors import InputError
from escnet_runtime.image_io import load_image, pil_to_array
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest
from escnet_runtime.postprocess import label_classes, view_probabilities
from escnet_runtime.preprocess import check_image, view
from escnet_runtime.sliding import FoldAccumulator, WindowGrid, sliding_views
from escnet_runtime.text_encoder import TextEncoder
from escnet_runtime.tokenizer import ClipTokenizer

ImageLike = np.ndarray | str | Path | Image.Image
ScoresFor = Callable[[int, int], np.ndarray]  # (start, end) -> scores of those classes (end - start, h, w)


@dataclass(frozen=True)
class SegmentResult:
    """labels (H, W) int32 class indices at the image's size; scores (T, H, W) float32 when asked for."""

    labels: np.ndarray
    class_names: tuple[str, ...]
    scores: np.ndarray | None = None

    def shares(self) -> dict[str, float]:
        """Class name -> fraction of the image's pixels labelled with it (every class, summing to 1)."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.class_names))
        total = max(1, int(self.labels.size))
        return {name: float(c) / total for name, c in zip(self.class_names, counts, strict=True)}


class Segmenter:
    """Open-vocabulary segmentation from an artifacts folder, without torch.

    ``backend``: "ort-cpu", "ort-cuda", "ort-trt", "trt", "ov-cpu" or "ov-cpu-bf16",
    or a ready Backend (e.g. Triton BLS calls). ``cache_dir``:
    where text embeddings persist (default ``~/.cache/escnet/text-embeddings``); ``disk_cache=False``
    keeps them in memory only. ``batch_size``: views per image-encoder/decoder call (the decoder's memory grows
    with it). ``class_chunk``: classes per decoder call (default: the manifest's); vocabularies
    larger than it run the decoder's step graphs chunk by chunk, with the same result.
    ``close()`` (or ``with Segmenter(...) as seg:``) frees the backend's sessions / compiled models.
    """

    def __init__(
        self,
        artifacts: str | Path,
        backend: str | Backend = "ort-cpu",
        cache_dir: str | Path | None = None,
        disk_cache: bool = True,
        batch_size: int = 1,
        verify: bool = True,
        class_chunk: int | None = None,
        **backend_options: Any,
    ) -> None:
        if not isinstance(artifacts, str | Path):
            raise InputError(f"artifacts must be a folder path, got {type(artifacts).__name__}")
        self.batch_size = positive_int("batch_size", batch_size)
        if class_chunk is not None:
            class_chunk = positive_int("class_chunk", class_chunk)
        self.folder = Path(artifacts)
        self.manifest: Manifest = load_manifest(self.folder, verify=verify)
        missing = [g for g in (IMAGE_ENCODER, TEXT_ENCODER, DECODER) if g not in self.manifest.graphs]
        if missing:
            raise ManifestError(f"{self.folder}: the manifest has no {', '.join(missing)} graph; expected all three")
        steps = self.manifest.decoder_steps
        if class_chunk is not None and not steps:
            raise InputError(
                f"{self.folder}: these artifacts have no decoder step graphs, so classes cannot be chunked; "
                "export them again with this version of escnet-export"
            )
        # None: every vocabulary runs the all-classes decoder graph.
        chunk = class_chunk or self.manifest.class_chunk or DEFAULT_CLASS_CHUNK
        self.class_chunk: int | None = chunk if steps else None
        self.backend: Backend = (
            create_backend(backend, self.folder, self.manifest, **backend_options)
            if isinstance(backend, str)
            else backend
        )
        spec = self.manifest.tokenizer
        self.tokenizer = ClipTokenizer.from_manifest(self.folder, self.manifest)  # built from verified bytes
        self.image_size = self.manifest.preprocess.image_size
        identity = ModelIdentity(
            text_encoder_sha256=self.backend.graph_sha256(TEXT_ENCODER),
            tokenizer_sha256=spec.vocab_sha256,
            context_length=spec.context_length,
            precision=self.backend.precision,
        )
        dim = int(self.manifest.graphs[TEXT_ENCODER].outputs[0].shape[-1])
        directory = (Path(cache_dir) if cache_dir else default_cache_dir()) if disk_cache else None
        self.cache = TextEmbeddingCache(directory, dim=dim, expected_norm=1.0)  # the encoder normalises
        templates, batch = self.manifest.templates, self.manifest.texts_per_call()
        self.text = TextEncoder(self.backend, self.tokenizer, templates, identity, self.cache, batch)
        self._chunked = (
            ChunkedDecoder(self.backend, steps, self.manifest.graphs) if self.class_chunk is not None else None
        )
        self.class_names: tuple[str, ...] = ()
        self._embeddings: np.ndarray | None = None  # (T, P, D) float32
        self._device_embeddings: Any = None

    def close(self) -> None:
        """Free what the backend holds and forget the vocabulary; the Segmenter is unusable after."""
        self.backend.close()
        self._embeddings = self._device_embeddings = None
        self.class_names = ()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_cache(self, cache: TextEmbeddingCache) -> None:
        """Use ``cache`` for text embeddings from now on (e.g. a fresh one, to measure cold encoding)."""
        self.cache = self.text.cache = cache

    @property
    def templates(self) -> tuple[str, ...]:
        return self.manifest.templates

    def encode_vocabulary(self, names: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """names -> text embeddings (T, P, D) float32, from the cache where present (also fills it)."""
        return self.text.encode(names, progress)

    def set_vocabulary(self, names: Sequence[str], progress: Callable[[int, int], None] | None = None) -> Segmenter:
        """The classes ``segment`` chooses from, in label order."""
        emb = self.encode_vocabulary(names, progress)
        self.class_names = tuple(names)
        self._embeddings = emb
        self._device_embeddings = self.backend.put(emb)
        return self

    @property
    def embeddings(self) -> np.ndarray:
        if self._embeddings is None:
            raise InputError("no vocabulary; call set_vocabulary(names) first")
        return self._embeddings

    def _view_logits(self, views: np.ndarray) -> list[np.ndarray]:
        """views (V, 3, S, S) -> per view logits (T, 4g, 4g), V split into batches."""
        self.embeddings  # noqa: B018 (raises without a vocabulary)
        out: list[np.ndarray] = []
        for start in range(0, len(views), self.batch_size):
            batch = np.ascontiguousarray(views[start : start + self.batch_size])
            features = self.backend.run(
                IMAGE_ENCODER, {IMAGE: batch}, keep_on_device=(*self.manifest.graphs[IMAGE_ENCODER].output_names,)
            )
            logits = self.decode(features)  # (b, T, 4g, 4g)
            out.extend(logits[i] for i in range(len(batch)))
        return out

    def decode(self, features: dict[str, Any], embeddings: np.ndarray | None = None) -> np.ndarray:
        """The image encoder's outputs (host or device values) -> logits (B, T, 4g, 4g) on the host.

        ``embeddings`` (T, P, D): other classes than the vocabulary's (default: the vocabulary).
        One ``decoder`` call when T is at most ``class_chunk``, otherwise its steps over chunks.
        """
        emb = self.embeddings if embeddings is None else embeddings
        if self._chunked is not None and self.class_chunk is not None and len(emb) > self.class_chunk:
            return self._chunked(features, emb, self.class_chunk)
        # Given embeddings go as host arrays: ``put`` may replace the vocabulary's device copy.
        feed = {**features, CLASS_EMBEDDINGS: self._device_embeddings if embeddings is None else embeddings}
        return self.backend.to_host(self.backend.run(DECODER, feed)[LOGITS])

    def _scores_single(self, images: list[np.ndarray]) -> list[ScoresFor]:
        """Single view: every image resized to S; per image, scores (Tc, S, S) of classes [start, end)."""
        views = np.stack([view(img, self.image_size, self.manifest.preprocess) for img in images])
        size = self.image_size
        return [
            lambda s, e, logits=logits: view_probabilities(logits[s:e], size) for logits in self._view_logits(views)
        ]

    def _scores_sliding(self, image: np.ndarray) -> ScoresFor:
        """Sliding window, one image: scores (Tc, BIG, BIG) of classes [start, end)."""
        grid = WindowGrid.from_spec(self.manifest.sliding())
        views = sliding_views(image, self.manifest.preprocess, grid)  # (L + 1, 3, S, S): windows, global
        *windows, global_view = self._view_logits(views)  # each (T, 4g, 4g)
        size = self.image_size

        def scores(start: int, end: int) -> np.ndarray:
            acc = FoldAccumulator(grid, end - start)
            for i in range(len(windows) - 1, -1, -1):  # last-to-first: F.fold's order
                acc.add(i, view_probabilities(windows[i][start:end], size))
            return acc.finish(view_probabilities(global_view[start:end], size))

        return scores

    def segment(
        self,
        images: ImageLike | Sequence[ImageLike],
        sliding_window: bool = False,
        return_scores: bool = False,
    ) -> SegmentResult | list[SegmentResult]:
        """One image (H, W, 3) uint8 (or a path) -> SegmentResult; a list or (B, H, W, 3) -> a list.

        ``return_scores``: also return the class scores (T, H, W) in [0, 1] (sigmoid, averaged over
        views) at the image's size; the labels are their arg-max.
        """
        single = isinstance(images, str | Path | Image.Image) or (isinstance(images, np.ndarray) and images.ndim != 4)
        if not single and (isinstance(images, bytes | dict | set) or not isinstance(images, Sequence | np.ndarray)):
            raise InputError(
                f"images must be an image (array, PIL image or path) or a list of them, got {_kind(images)}"
            )
        batch = [images] if single else list(images)
        if not batch:
            raise InputError("no images given")
        arrays = [as_image(x) for x in batch]
        self.embeddings  # noqa: B018 (raises without a vocabulary)
        results: list[SegmentResult] = []
        for start in range(0, len(arrays), self.batch_size):
            group = arrays[start : start + self.batch_size]
            if sliding_window:
                scores = [self._scores_sliding(img) for img in group]
            else:
                scores = self._scores_single(group)
            for img, scores_for in zip(group, scores, strict=True):
                up = label_classes(scores_for, len(self.class_names), img.shape[:2], keep_scores=return_scores)
                results.append(SegmentResult(up.labels, self.class_names, up.scores))
        return results[0] if single else results


def _kind(value: object) -> str:
    return "None" if value is None else type(value).__name__


def positive_int(name: str, value: object) -> int:
    """``value`` as a whole number >= 1, or a one-line InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name} must be a whole number >= 1, got {value!r} ({_kind(value)})")
    if value < 1:
        raise InputError(f"{name} is {value}; expected at least 1")
    return int(value)


def as_image(x: object) -> np.ndarray:
    """One image (array, PIL image or path) -> (H, W, 3) uint8, or a one-line InputError."""
    if isinstance(x, str | Path):
        return check_image(load_image(x))
    if isinstance(x, Image.Image):
        return check_image(pil_to_array(x))
    if not isinstance(x, np.ndarray):
        raise InputError(f"an image must be a numpy array (H, W, 3) uint8, a PIL image or a path, got {_kind(x)}")
    return check_image(x)


def precompute_vocabulary(
    artifacts: str | Path, names: Sequence[str], backend: str = "ort-cpu", cache_dir: str | Path | None = None
) -> int:
    """Encode ``names`` into the on-disk text-embedding cache ahead of time; returns the new entries.

    Only the text encoder is loaded. Later ``set_vocabulary`` calls with these names (for the same
    model, backend precision and templates) read the cache instead of running the encoder.
    """
    with Segmenter(artifacts, backend=backend, cache_dir=cache_dir, disk_cache=True) as seg:
        seg.encode_vocabulary(names)
        return seg.cache.stats.disk_writes
