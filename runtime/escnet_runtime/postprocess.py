"""Decoder logits -> class scores and labels at the image's size (escnet/inference.py's maths).

Per view: logits (T, 4g, 4g) -> bilinear to (S, S) -> sigmoid. The final scores (T, h, w) are
resized to the image's (H, W) and arg-maxed over classes in blocks of rows, so that a large image
or vocabulary never holds (T, H, W) at once unless the caller asks for the scores.
``label_classes`` goes one step further for large vocabularies: scores are produced a chunk of
classes at a time and the arg-max is kept as a running best, so nothing of size T x S x S is
ever held (every step is per class, so the result is bit-identical to all classes at once).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from escnet_runtime.resize import F32, AxisWeights, axis_weights, resize_bilinear, resize_height, resize_width

# Working memory of the pieces in flight at once (blocks of output rows, groups of classes): small
# enough that a piece's float64 temporaries stay near the cores (docs/runtime.md#post-processing).
# The size changes no value, only the speed.
BLOCK_BYTES = 16 << 20
POST_CHUNK = 32  # classes per step in label_classes
# Blocks of rows are resized on this many threads at once (numpy releases the GIL in its loops);
# the engines have finished by then, so the cores are free. Every value is computed as before.
POST_THREADS = max(1, min(4, os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _each(work: Callable[[int], None], items: range) -> None:
    """``work(i)`` for every item: on the post-processing threads (made on first use, none at
    import) when there are several items and threads, else here. A failure is re-raised here."""
    global _pool
    if POST_THREADS == 1 or len(items) <= 1:
        for i in items:
            work(i)
        return
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POST_THREADS, thread_name_prefix="escnet-post")
    list(_pool.map(work, items))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function, 1 / (1 + exp(-x)), overflow-safe."""
    with np.errstate(over="ignore"):
        return (F32(1) / (F32(1) + np.exp(-x))).astype(F32)


def view_probabilities(logits: np.ndarray, size: int) -> np.ndarray:
    """logits (T, 4g, 4g) float32 -> probabilities (T, size, size): upsample, then sigmoid.

    Classes go in groups whose float64 temporaries (8 bytes per output value) fit BLOCK_BYTES
    over the POST_THREADS threads; each class's values are computed as alone."""
    t = len(logits)
    group = max(1, BLOCK_BYTES // (8 * size * size * POST_THREADS))  # classes per piece of work
    out = np.empty((t, size, size), dtype=F32)

    def part(a: int) -> None:
        out[a : a + group] = sigmoid(resize_bilinear(logits[a : a + group], (size, size)))

    _each(part, range(0, t, group))
    return out


@dataclass(frozen=True)
class Upsampled:
    """labels (H, W) int32 class indices; scores (T, H, W) float32, or None when not asked for;
    best (H, W) float32: the winning class's score (NaN where a NaN won, as in the arg-max)."""

    labels: np.ndarray
    scores: np.ndarray | None
    best: np.ndarray | None = None


def upsample_and_label(scores: np.ndarray, out_size: tuple[int, int], keep_scores: bool = False) -> Upsampled:
    """scores (T, h, w) float32 -> labels (H, W) = argmax over T of scores resized to out_size.

    Rows are processed in blocks; each output value is computed exactly as one full resize
    would compute it. NaN scores win the arg-max, as in torch.
    """
    t, h, w = scores.shape
    out_h, out_w = out_size
    hy, wx = axis_weights(h, out_h), axis_weights(w, out_w)
    labels = np.empty((out_h, out_w), dtype=np.int32)
    best = np.empty((out_h, out_w), dtype=F32)
    full = np.empty((t, out_h, out_w), dtype=F32) if keep_scores else None
    threads = POST_THREADS
    rows_per_block = max(1, min(BLOCK_BYTES // max(1, 16 * t * out_w * threads), -(-out_h // threads)))

    def block(r0: int) -> None:  # output rows [r0, r1): disjoint slices of labels, best, full
        r1 = min(out_h, r0 + rows_per_block)
        i0, i1 = hy.i0[r0:r1], hy.i1[r0:r1]
        src = np.arange(min(i0.min(), i1.min()), max(i0.max(), i1.max()) + 1)  # contiguous source rows
        narrow = resize_width(scores[:, src, :], wx)  # (T, k, W)
        values = resize_height(narrow, AxisWeights(i0 - src[0], i1 - src[0], hy.l0[r0:r1], hy.l1[r0:r1]))
        idx = np.argmax(values, axis=0)
        labels[r0:r1] = idx
        best[r0:r1] = np.take_along_axis(values, idx[None], axis=0)[0]
        if full is not None:
            full[:, r0:r1] = values

    _each(block, range(0, out_h, rows_per_block))
    return Upsampled(labels, full, best)


def label_classes(
    scores_for: Callable[[int, int], np.ndarray],
    classes: int,
    out_size: tuple[int, int],
    keep_scores: bool = False,
    chunk: int = POST_CHUNK,
) -> Upsampled:
    """``scores_for(start, end)`` -> scores (end - start, h, w) of those classes; returns what
    ``upsample_and_label`` returns for all ``classes`` at once, computed ``chunk`` classes at a time.

    The arg-max is merged chunk by chunk with torch's rules: the first maximum wins ties, and
    the first NaN wins over any number.
    """
    out_h, out_w = out_size
    full = np.empty((classes, out_h, out_w), dtype=F32) if keep_scores else None
    labels = best = None
    for start in range(0, classes, chunk):
        end = min(classes, start + chunk)
        up = upsample_and_label(scores_for(start, end), out_size, keep_scores)
        assert up.best is not None
        if full is not None and up.scores is not None:
            full[start:end] = up.scores
        if labels is None or best is None:
            labels, best = up.labels + start, up.best
            continue
        with np.errstate(invalid="ignore"):
            take = (up.best > best) | (np.isnan(up.best) & ~np.isnan(best))
        labels = np.where(take, up.labels + start, labels).astype(np.int32)
        best = np.where(take, up.best, best)
    if labels is None:
        raise ValueError("label_classes needs at least one class")
    return Upsampled(labels, full, best)
