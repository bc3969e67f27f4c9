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
from escnet_runtime.image_io import DEFAULT_MAX_PIXELS, load_image, pil_to_array, pixels
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest
from escnet_runtime.options import check_backend_options, kind, path_option, positive_int, unknown_option
from escnet_runtime.postprocess import label_classes, view_probabilities
from escnet_runtime.preprocess import check_image, view
from escnet_runtime.shared_lock import SharedLock
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


@dataclass(frozen=True)
class _Vocabulary:
    """One vocabulary, swapped whole: names (T,), embeddings (T, P, D) float32 and their backend copy."""

    names: tuple[str, ...]
    embeddings: np.ndarray
    device: Any


class Segmenter:
    """Open-vocabulary segmentation from an artifacts folder, without torch.

    ``backend``: "ort-cpu", "ort-cuda", "ort-trt", "trt", "ov-cpu" or "ov-cpu-bf16",
    or a ready Backend (e.g. Triton BLS calls). ``cache_dir``:
    where text embeddings persist (default ``~/.cache/escnet/text-embeddings``); ``disk_cache=False``
    keeps them in memory only. ``batch_size``: views per image-encoder/decoder call (the decoder's memory grows
    with it). ``class_chunk``: classes per decoder call (default: the manifest's); vocabularies
    larger than it run the decoder's step graphs chunk by chunk, with the same result.
    ``max_pixels``: the largest image (H x W) ``segment`` takes, checked before any work
    (default ``DEFAULT_MAX_PIXELS``, about 89 Mpx; memory grows with it). Other keyword arguments
    go to the backend (e.g. ``threads``, ``model_cache_dir``); each is checked here, one line for a
    wrong one. ``close()`` (or ``with Segmenter(...) as seg:``) frees the backend's sessions / compiled models.

    Thread safety: ``segment`` may be called from several threads at once, and ``set_vocabulary``
    while they run. Each ``segment`` call uses one vocabulary from start to end (the one set when
    it started): its labels always index its own ``class_names``. A new vocabulary is encoded
    without blocking ``segment`` and swapped in between calls (a swap waits for the calls that
    use the old one's backend copy). Whether one backend runs calls in parallel or in turn is the
    backend's (ONNX Runtime: in parallel).
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
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **backend_options: Any,
    ) -> None:
        if not isinstance(artifacts, str | Path):
            raise InputError(f"artifacts must be a folder path, got {type(artifacts).__name__}")
        self.batch_size = positive_int("batch_size", batch_size)
        self.max_pixels = positive_int("max_pixels", max_pixels)
        if class_chunk is not None:
            class_chunk = positive_int("class_chunk", class_chunk)
        cache_path = path_option("cache_dir", cache_dir)
        for name, flag in (("disk_cache", disk_cache), ("verify", verify)):
            if not isinstance(flag, bool | np.bool_):
                raise InputError(f"{name} must be True or False, got {flag!r} ({kind(flag)})")
        check_backend_options(backend_options)
        self.folder = Path(artifacts)
        self.manifest: Manifest = load_manifest(self.folder, verify=verify)
        missing = [g for g in (IMAGE_ENCODER, TEXT_ENCODER, DECODER) if g not in self.manifest.graphs]
        if missing:
            raise ManifestError(f"{self.folder}: the manifest has no {', '.join(missing)} graph; expected all three")
        self.class_chunk = self._chunk(class_chunk)
        self.backend: Backend = self._open_backend(backend, backend_options)
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
        directory = (cache_path or default_cache_dir()) if disk_cache else None
        self.cache = TextEmbeddingCache(directory, dim=dim, expected_norm=1.0)  # the encoder normalises
        templates, batch = self.manifest.templates, self.manifest.texts_per_call()
        self.text = TextEncoder(self.backend, self.tokenizer, templates, identity, self.cache, batch)
        steps = self.manifest.decoder_steps
        self._chunked = (
            ChunkedDecoder(self.backend, steps, self.manifest.graphs) if self.class_chunk is not None else None
        )
        self._vocab: _Vocabulary | None = None
        self._swap = SharedLock()

    def _chunk(self, class_chunk: int | None) -> int | None:
        """Classes per decoder call; None: every vocabulary runs the all-classes decoder graph."""
        if class_chunk is not None and not self.manifest.decoder_steps:
            raise InputError(
                f"{self.folder}: these artifacts have no decoder step graphs, so classes cannot be chunked; "
                "export them again with this version of escnet-export"
            )
        chunk = class_chunk or self.manifest.class_chunk or DEFAULT_CLASS_CHUNK
        return chunk if self.manifest.decoder_steps else None

    def _open_backend(self, backend: str | Backend, options: dict[str, Any]) -> Backend:
        if not isinstance(backend, str):
            if options:
                raise InputError(f"options {', '.join(options)} go to a backend by name; a ready backend takes none")
            return backend
        try:
            return create_backend(backend, self.folder, self.manifest, **options)
        except TypeError as e:
            unknown = unknown_option(e, backend)
            if unknown is None:
                raise
            raise unknown from None

    def close(self) -> None:
        """Free what the backend holds and forget the vocabulary; the Segmenter is unusable after."""
        with self._swap.exclusive():
            self.backend.close()
            self._vocab = None

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
        """The classes ``segment`` chooses from, in label order (safe while other threads segment)."""
        emb = self.encode_vocabulary(names, progress)  # (T, P, D); checks the names
        with self._swap.exclusive():  # no segment call is using the old backend copy now
            self._vocab = _Vocabulary(tuple(names), emb, self.backend.put(emb))
        return self

    @property
    def class_names(self) -> tuple[str, ...]:
        """The vocabulary's names, in label order (empty before ``set_vocabulary``)."""
        vocab = self._vocab
        return vocab.names if vocab is not None else ()

    @property
    def embeddings(self) -> np.ndarray:
        """The vocabulary's text embeddings (T, P, D) float32."""
        return self._current().embeddings

    def _current(self) -> _Vocabulary:
        vocab = self._vocab
        if vocab is None:
            raise InputError("no vocabulary; call set_vocabulary(names) first")
        return vocab

    def _view_logits(self, views: np.ndarray, vocab: _Vocabulary) -> list[np.ndarray]:
        """views (V, 3, S, S) -> per view logits (T, 4g, 4g), V split into batches."""
        out: list[np.ndarray] = []
        keep = (*self.manifest.graphs[IMAGE_ENCODER].output_names,)
        for start in range(0, len(views), self.batch_size):
            batch = np.ascontiguousarray(views[start : start + self.batch_size])
            features = self.backend.run(IMAGE_ENCODER, {IMAGE: batch}, keep_on_device=keep)
            logits = self._decode(features, vocab.embeddings, vocab.device)  # (b, T, 4g, 4g)
            out.extend(logits[i] for i in range(len(batch)))
        return out

    def decode(self, features: dict[str, Any], embeddings: np.ndarray | None = None) -> np.ndarray:
        """The image encoder's outputs (host or device values) -> logits (B, T, 4g, 4g) on the host.

        ``embeddings`` (T, P, D): other classes than the vocabulary's (default: the vocabulary).
        One ``decoder`` call when T is at most ``class_chunk``, otherwise its steps over chunks.
        """
        if embeddings is not None:  # given embeddings go as host arrays
            return self._decode(features, embeddings, embeddings)
        with self._swap.shared():
            vocab = self._current()
            return self._decode(features, vocab.embeddings, vocab.device)

    def _decode(self, features: dict[str, Any], emb: np.ndarray, device: Any) -> np.ndarray:
        """As ``decode``, for embeddings (T, P, D) and their backend copy ``device``."""
        if self._chunked is not None and self.class_chunk is not None and len(emb) > self.class_chunk:
            return self._chunked(features, emb, self.class_chunk)
        feed = {**features, CLASS_EMBEDDINGS: device}
        return self.backend.to_host(self.backend.run(DECODER, feed)[LOGITS])

    def _scores_single(self, images: list[np.ndarray], vocab: _Vocabulary) -> list[ScoresFor]:
        """Single view: every image resized to S; per image, scores (Tc, S, S) of classes [start, end)."""
        views = np.stack([view(img, self.image_size, self.manifest.preprocess) for img in images])
        size = self.image_size
        return [
            lambda s, e, logits=logits: view_probabilities(logits[s:e], size)
            for logits in self._view_logits(views, vocab)
        ]

    def _scores_sliding(self, image: np.ndarray, vocab: _Vocabulary) -> ScoresFor:
        """Sliding window, one image: scores (Tc, BIG, BIG) of classes [start, end)."""
        grid = WindowGrid.from_spec(self.manifest.sliding())
        views = sliding_views(image, self.manifest.preprocess, grid)  # (L + 1, 3, S, S): windows, global
        *windows, global_view = self._view_logits(views, vocab)  # each (T, 4g, 4g)
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
        views) at the image's size; the labels are their arg-max. Every image is checked (type,
        shape, at most ``max_pixels``) before any is segmented; all use the same vocabulary.
        """
        single = isinstance(images, str | Path | Image.Image) or (isinstance(images, np.ndarray) and images.ndim != 4)
        if not single and (isinstance(images, bytes | dict | set) or not isinstance(images, Sequence | np.ndarray)):
            raise InputError(
                f"images must be an image (array, PIL image or path) or a list of them, got {kind(images)}"
            )
        batch = [images] if single else list(images)
        if not batch:
            raise InputError("no images given")
        arrays = [as_image(x, self.max_pixels) for x in batch]
        results: list[SegmentResult] = []
        with self._swap.shared():  # one vocabulary for the whole call
            vocab = self._current()
            for start in range(0, len(arrays), self.batch_size):
                group = arrays[start : start + self.batch_size]
                results.extend(self._segment_group(group, vocab, sliding_window, return_scores))
        return results[0] if single else results

    def _segment_group(
        self, group: list[np.ndarray], vocab: _Vocabulary, sliding_window: bool, return_scores: bool
    ) -> list[SegmentResult]:
        """Up to ``batch_size`` images (H, W, 3) uint8 -> their results, with ``vocab``."""
        if sliding_window:
            scores = [self._scores_sliding(img, vocab) for img in group]
        else:
            scores = self._scores_single(group, vocab)
        results = []
        for img, scores_for in zip(group, scores, strict=True):
            up = label_classes(scores_for, len(vocab.names), img.shape[:2], keep_scores=return_scores)
            results.append(SegmentResult(up.labels, vocab.names, up.scores))
        return results


def as_image(x: object, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One image (array, PIL image or path) -> (H, W, 3) uint8 of at most ``max_pixels``, or a one-line InputError."""
    if isinstance(x, str | Path):
        return check_image(load_image(x, max_pixels))
    if isinstance(x, Image.Image):
        return check_image(pil_to_array(x, max_pixels))
    if not isinstance(x, np.ndarray):
        raise InputError(f"an image must be a numpy array (H, W, 3) uint8, a PIL image or a path, got {kind(x)}")
    image = check_image(x)
    h, w = image.shape[:2]
    if h * w > max_pixels:
        raise InputError(
            f"image is {w}x{h} ({pixels(h * w)}), over the limit of {pixels(max_pixels)} "
            "(raise it with Segmenter(..., max_pixels=N) if memory allows)"
        )
    return image


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
