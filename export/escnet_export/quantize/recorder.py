"""Calibration inputs from the fp32 artifacts' own graphs: a backend that records what it runs.

A :class:`RecordingBackend` wraps an fp32 runtime backend and keeps a copy of every graph's
inputs (up to ``limit`` feeds per graph). A ``Segmenter`` on it, segmenting the calibration
images, so records exactly what each graph sees when deployed: the image encoder's input views,
the decoder's and every decoder step's inputs (the image encoder's outputs feed them), and the
text encoder's token ids for the vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from escnet_runtime import Segmenter
from escnet_runtime.contract import IMAGE_ENCODER

Feed = dict[str, np.ndarray]


class RecordingBackend:
    """Delegates to ``inner``; records each graph's inputs as numpy copies."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.precision = inner.precision
        self.limit = limit
        self.feeds: dict[str, list[Feed]] = {}
        self.last_outputs: dict[str, dict[str, Any]] = {}

    def graph_sha256(self, graph: str) -> str:
        return self.inner.graph_sha256(graph)

    def run(self, graph: str, inputs: Mapping[str, Any], keep_on_device: Sequence[str] = ()) -> dict[str, Any]:
        kept = self.feeds.setdefault(graph, [])
        if len(kept) < self.limit:
            kept.append({k: np.array(self.inner.to_host(v), copy=True) for k, v in inputs.items()})
        out = self.inner.run(graph, inputs, ())
        self.last_outputs[graph] = out
        return out

    def put(self, array: np.ndarray) -> Any:
        return self.inner.put(array)

    def to_host(self, value: Any) -> np.ndarray:
        return self.inner.to_host(value)

    def release(self, graph: str) -> None:
        self.inner.release(graph)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> RecordingBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record_feeds(
    folder: Any, class_names: Sequence[str], images: Sequence[np.ndarray], limit: int
) -> dict[str, list[Feed]]:
    """graph -> up to ``limit`` input feeds, from segmenting ``images`` (H, W, 3) uint8 with the
    fp32 artifacts in ``folder`` on ONNX Runtime's CPU provider.

    Each image runs the all-classes ``decoder`` once and the decoder's steps once, over two
    chunks of classes (so the per-chunk sums are those of a split vocabulary, as deployed).
    """
    from escnet_runtime.backends import create_backend
    from escnet_runtime.manifest import load_manifest

    manifest = load_manifest(folder)
    recorder = RecordingBackend(create_backend("ort-cpu", folder, manifest), limit)
    whole = Segmenter(folder, backend=recorder, disk_cache=False, class_chunk=max(1, len(class_names)))
    steps = None
    if manifest.decoder_steps and len(class_names) > 1:
        steps = Segmenter(folder, backend=recorder, disk_cache=False, class_chunk=(len(class_names) + 1) // 2)
        steps.set_vocabulary(class_names)
    whole.set_vocabulary(class_names)
    try:
        for image in images:
            whole.segment(image)
            if steps is not None:
                steps.decode(recorder.last_outputs[IMAGE_ENCODER])
    finally:
        recorder.close()
    return recorder.feeds
