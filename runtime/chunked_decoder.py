"""The decoder over chunks of classes: memory bounded by the chunk, for any number of classes.

The exported ``decoder`` graph takes all T classes in one call, and its working memory grows
with T (about 27 MB per class for vit-b16 on ONNX Runtime CPU). The decoder's steps
(``contract.decoder_stage_specs``) each take a chunk of classes; only two small per-pixel
quantities couple the classes, and they are combined here on the host:

1. ``decoder_scores`` per chunk -> the prompt softmax's normaliser, combined by log-sum-exp;
2. ``decoder_open`` per chunk -> per-class state and prompts, and block 0's class-attention
   shares, added up over chunks;
3. ``decoder_block_i`` per chunk, given block i-1's sums -> new state and block i's shares;
4. ``decoder_close`` per chunk, given the last block's sums -> logits.

What stays alive between steps is the per-class state (B, T, C, g, g) and the prompts: about
0.3 MB per class and image for vit-b16. Values cross steps as host arrays, so every backend
runs the same orchestration (a C++ port is the same loops and two reductions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from .contract import (
    CLASS_EMBEDDINGS,
    DECODER_CLOSE,
    DECODER_OPEN,
    DECODER_SCORES,
    DENSE,
    GUIDANCE_A,
    GUIDANCE_B,
    K_SUM,
    K_SUM_PART,
    KV,
    KV_PART,
    LOGITS,
    MASKS,
    POINTS,
    SCORE_LSE,
    STATE,
    STATE_OUT,
)
from .errors import InputError


def class_spans(t: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) ranges of at most ``chunk`` classes covering T."""
    if chunk < 1:
        raise InputError(f"class_chunk is {chunk}; expected at least 1")
    return [(s, min(s + chunk, t)) for s in range(0, t, chunk)]


class StepRunner(Protocol):
    """What the orchestration needs of a backend (every ``Backend`` has it)."""

    def run(self, graph: str, inputs: Mapping[str, Any], keep_on_device: Sequence[str] = ()) -> dict[str, Any]: ...

    def to_host(self, value: Any) -> np.ndarray: ...


class ChunkedDecoder:
    """Runs the decoder's step graphs ``steps`` (scores, open, blocks..., close) on ``backend``."""

    def __init__(self, backend: StepRunner, steps: Sequence[str]) -> None:
        if len(steps) < 3 or steps[0] != DECODER_SCORES or steps[1] != DECODER_OPEN or steps[-1] != DECODER_CLOSE:
            raise InputError(f"decoder steps {list(steps)} are not scores, open, blocks..., close")
        self.backend = backend
        self.blocks = tuple(steps[2:-1])

    def _host(self, value: Any) -> np.ndarray:
        return np.asarray(self.backend.to_host(value), dtype=np.float32)

    def __call__(self, features: Mapping[str, Any], embeddings: np.ndarray, chunk: int) -> np.ndarray:
        """features: the image encoder's outputs (dense, guidance_a, guidance_b; host or device
        values); embeddings (T, P, D) float32 -> logits (B, T, 4g, 4g) float32 on the host."""
        run, dense = self.backend.run, features[DENSE]
        texts = [np.ascontiguousarray(embeddings[s:e]) for s, e in class_spans(len(embeddings), chunk)]

        parts = [self._host(run(DECODER_SCORES, {DENSE: dense, CLASS_EMBEDDINGS: t})[SCORE_LSE]) for t in texts]
        lse = np.logaddexp.reduce(np.stack(parts), axis=0) if len(parts) > 1 else parts[0]  # (B, g, g)

        states, points, masks = [], [], []
        kv = k_sum = None
        for t in texts:
            out = run(DECODER_OPEN, {DENSE: dense, CLASS_EMBEDDINGS: t, SCORE_LSE: lse})
            states.append(self._host(out[STATE_OUT]))
            points.append(self._host(out[POINTS]))
            masks.append(self._host(out[MASKS]))
            kv, k_sum = _add(kv, self._host(out[KV_PART])), _add(k_sum, self._host(out[K_SUM_PART]))

        for graph in self.blocks:
            new_kv = new_k = None
            for j, t in enumerate(texts):
                feed = {
                    STATE: states[j],
                    DENSE: dense,
                    CLASS_EMBEDDINGS: t,
                    POINTS: points[j],
                    MASKS: masks[j],
                    KV: kv,
                    K_SUM: k_sum,
                }
                out = run(graph, feed)
                states[j] = self._host(out[STATE_OUT])
                new_kv, new_k = _add(new_kv, self._host(out[KV_PART])), _add(new_k, self._host(out[K_SUM_PART]))
            kv, k_sum = new_kv, new_k

        guid_a, guid_b = features[GUIDANCE_A], features[GUIDANCE_B]
        logits = []
        for j, t in enumerate(texts):
            feed = {STATE: states[j], CLASS_EMBEDDINGS: t, KV: kv, K_SUM: k_sum, GUIDANCE_A: guid_a, GUIDANCE_B: guid_b}
            logits.append(self._host(run(DECODER_CLOSE, feed)[LOGITS]))
        return np.concatenate(logits, axis=1) if len(logits) > 1 else logits[0]


def _add(total: np.ndarray | None, part: np.ndarray) -> np.ndarray:
    return part if total is None else total + part
