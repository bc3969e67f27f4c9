"""The decoder over chunks of classes: memory bounded by the chunk, for any number of classes.

The exported ``decoder`` graph takes all T classes in one call, and its working memory grows
with T. The decoder's step graphs (``contract.decoder_step_specs``; their order is the
manifest's ``decoder_steps``: open, block_0, attend_0, block_1, ..., block_{N-1}, close) each
take one chunk of classes. Classes are coupled only through small per-pixel sums over ALL
classes (each block's prompt-softmax normaliser, each block's class-attention sums), which
are combined here on the host. The whole orchestration is these rules, by tensor name:

1. Values: the image encoder's outputs (``dense_features``, ``guidance_a``, ``guidance_b``) are
   shared by every chunk; ``class_embeddings`` is each chunk's slice of the (T, P, D) array.
2. For each step in ``decoder_steps`` order, for each chunk in order: run the step, feeding
   each input by name from the chunk's own values, else from the shared values.
3. Each output, by name (``contract.CARRIED`` / ``contract.PARTS``):
   - ``class_state_out`` / ``prompt_scores_out`` become the chunk's ``class_state`` /
     ``prompt_scores`` (read by the next step);
   - ``*_part`` is the chunk's share of a sum over all classes; after the step has run on
     every chunk, the shares are combined into the shared value without ``_part``:
     ``score_logsumexp`` = log(sum(exp(part))) over chunks (``np.logaddexp.reduce``),
     ``attention_kv`` and ``attention_k_sum`` = the sum of the parts;
   - ``logits`` (B, Tc, 4g, 4g) of every chunk, concatenated along the class axis, are the result.
4. After a step has run on every chunk, ``backend.release(step)``: a backend that keeps each
   graph's working memory (OpenVINO) may hand it back, so one step's memory is held at a time.

So the same logits come out for every chunk size (up to float summation order). What stays
alive between steps is the per-class state (B, T, C, g, g) and scores (B, T, g, g): about
0.3 MB per class and image for vit-b16. Values cross steps as host arrays, so every backend
runs the same orchestration (a C++ port is the same loops and two reductions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from escnet_runtime.contract import (
    CARRIED,
    CLASS_EMBEDDINGS,
    DECODER_CLOSE,
    DECODER_OPEN,
    DENSE,
    GUIDANCE_A,
    GUIDANCE_B,
    LOGITS,
    PARTS,
    GraphSpec,
)
from escnet_runtime.errors import InputError

SHARED_FEATURES = (DENSE, GUIDANCE_A, GUIDANCE_B)


def class_spans(t: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) ranges of at most ``chunk`` classes covering T."""
    if chunk < 1:
        raise InputError(f"class_chunk is {chunk}; expected at least 1")
    return [(s, min(s + chunk, t)) for s in range(0, t, chunk)]


class StepRunner(Protocol):
    """What the orchestration needs of a backend (every ``Backend`` has it)."""

    def run(self, graph: str, inputs: Mapping[str, Any], keep_on_device: Sequence[str] = ()) -> dict[str, Any]: ...

    def to_host(self, value: Any) -> np.ndarray: ...

    def release(self, graph: str) -> None: ...


def check_steps(steps: Sequence[str], graphs: Mapping[str, GraphSpec]) -> None:
    """The steps start with open, end with close, and every input is a shared feature, the
    class embeddings, or what an earlier step carries or combines; InputError otherwise."""
    if len(steps) < 3 or steps[0] != DECODER_OPEN or steps[-1] != DECODER_CLOSE:
        raise InputError(f"decoder steps {list(steps)} are not open, blocks..., close")
    known = {*SHARED_FEATURES, CLASS_EMBEDDINGS}
    for step in steps:
        if step not in graphs:
            raise InputError(f"decoder step {step!r} has no graph")
        missing = [n for n in graphs[step].input_names if n not in known]
        if missing:
            raise InputError(f"decoder step {step!r} reads {missing}, which no earlier step provides")
        outputs = graphs[step].output_names
        known |= {CARRIED[o] for o in outputs if o in CARRIED} | {PARTS[o][0] for o in outputs if o in PARTS}
    if LOGITS not in graphs[steps[-1]].output_names:
        raise InputError(f"the last decoder step {steps[-1]!r} gives no {LOGITS}")


class ChunkedDecoder:
    """Runs the decoder's step graphs ``steps`` (specs in ``graphs``) on ``backend``."""

    def __init__(self, backend: StepRunner, steps: Sequence[str], graphs: Mapping[str, GraphSpec]) -> None:
        check_steps(steps, graphs)
        self.backend = backend
        self.steps = tuple(steps)
        self.graphs = graphs

    def _host(self, value: Any) -> np.ndarray:
        return np.asarray(self.backend.to_host(value), dtype=np.float32)

    def __call__(self, features: Mapping[str, Any], embeddings: np.ndarray, chunk: int) -> np.ndarray:
        """features: the image encoder's outputs (dense, guidance_a, guidance_b; host or device
        values); embeddings (T, P, D) float32 -> logits (B, T, 4g, 4g) float32 on the host."""
        shared: dict[str, Any] = {name: features[name] for name in SHARED_FEATURES}
        chunks = [
            {CLASS_EMBEDDINGS: np.ascontiguousarray(embeddings[s:e])} for s, e in class_spans(len(embeddings), chunk)
        ]
        for step in self.steps:
            names = self.graphs[step].input_names
            parts: dict[str, list[np.ndarray]] = {}
            for values in chunks:
                out = self.backend.run(step, {n: values[n] if n in values else shared[n] for n in names})
                for name, value in out.items():
                    if name in PARTS:
                        parts.setdefault(name, []).append(self._host(value))
                    else:
                        values[CARRIED.get(name, name)] = self._host(value)
            self.backend.release(step)  # done with this step for this image: its working memory may go
            for name, shares in parts.items():
                target, how = PARTS[name]
                shared[target] = _combine(shares, how)
        logits = [values[LOGITS] for values in chunks]
        return np.concatenate(logits, axis=1) if len(logits) > 1 else logits[0]


def _combine(shares: list[np.ndarray], how: str) -> np.ndarray:
    """Shares of a sum over classes, one per chunk -> the value over all classes."""
    if how not in ("logsumexp", "sum"):
        raise InputError(f"unknown combination {how!r} of a decoder step's part outputs")
    if len(shares) == 1:
        return shares[0]
    # a left fold in chunk order into one copy: the values of np.stack(shares).sum(axis=0) (and of
    # np.logaddexp.reduce) without a (chunks, ...) array; a backend may still hold the shares
    total = shares[0].copy()
    for share in shares[1:]:
        if how == "sum":
            total += share
        else:
            np.logaddexp(total, share, out=total)
    return total
