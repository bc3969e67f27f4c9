"""Run the exported graphs in ONNX Runtime (CPU) and compare them with the PyTorch model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from escnet_runtime.chunked_decoder import ChunkedDecoder
from escnet_runtime.contract import DECODER, DECODER_CLOSE, IMAGE_ENCODER, LOGITS, TEXT_ENCODER, GraphSpec

from escnet import ESCNet
from escnet_export.checks.parity import ENCODER_TOLERANCE, LOGITS_TOLERANCE, Comparison, compare
from escnet_export.onnx.wrappers import graph_modules

END_TO_END = "end_to_end"
CHUNKED_END_TO_END = "chunked_end_to_end"
PARITY_CHUNK = 2  # classes per chunk when the decoder's steps are chained (uneven spans for T = 5)


def session(path: Path) -> ort.InferenceSession:
    """A CPU session with full graph optimisation (what a deployment would run)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_graph(sess: ort.InferenceSession, spec: GraphSpec, args: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    feeds = dict(zip(spec.input_names, args, strict=True))
    return sess.run(spec.output_names, feeds)


def to_numpy(args: tuple[torch.Tensor, ...]) -> tuple[np.ndarray, ...]:
    return tuple(a.detach().cpu().numpy() for a in args)


@torch.no_grad()
def graph_parity(
    model: ESCNet,
    folder: Path,
    specs: dict[str, GraphSpec],
    samples: dict[str, tuple[torch.Tensor, ...]],
    sessions: dict[str, ort.InferenceSession] | None = None,
    steps: Sequence[str] = (),
) -> list[Comparison]:
    """Each graph on the same inputs as PyTorch, then the encoders and the decoder chained (ONNX
    Runtime only) against PyTorch's ``decode(encode_image(image), encode_text(tokens))``: once
    with the all-classes decoder, once with the decoder's steps over chunks of ``PARITY_CHUNK``
    classes, chained by the runtime's own ``ChunkedDecoder``."""
    sessions = sessions or {name: session(folder / spec.file) for name, spec in specs.items()}
    modules = graph_modules(model)
    rows: list[Comparison] = []
    outputs: dict[str, list[np.ndarray]] = {}
    for name, spec in specs.items():
        ref = modules[name](*samples[name])
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        outputs[name] = run_graph(sessions[name], spec, to_numpy(samples[name]))
        tol = LOGITS_TOLERANCE if name in (DECODER, DECODER_CLOSE) else ENCODER_TOLERANCE
        for t, r, o in zip(spec.outputs, refs, outputs[name], strict=True):
            rows.append(compare(name, t.name, r.numpy(), o, tol))

    # End to end: ONNX Runtime's own encoder outputs feed its decoder.
    image, tokens = samples[IMAGE_ENCODER][0], samples[TEXT_ENCODER][0]
    p = model.config.num_templates
    text_ref = model.encode_text(tokens).reshape(-1, p, model.config.clip.embed_dim)
    ref_logits = model.decode(*model.encode_image(image), text_ref, class_chunk=None).numpy()
    text_ort = outputs[TEXT_ENCODER][0].reshape(-1, p, text_ref.shape[-1])
    logits = run_graph(sessions[DECODER], specs[DECODER], (*outputs[IMAGE_ENCODER], text_ort))[0]
    rows.append(compare(END_TO_END, LOGITS, ref_logits, logits, LOGITS_TOLERANCE))
    if steps:
        features = dict(zip(specs[IMAGE_ENCODER].output_names, outputs[IMAGE_ENCODER], strict=True))
        chunked = ChunkedDecoder(SessionRunner(sessions, specs), steps, specs)(features, text_ort, PARITY_CHUNK)
        rows.append(compare(CHUNKED_END_TO_END, LOGITS, ref_logits, chunked, LOGITS_TOLERANCE))
    return rows


class SessionRunner:
    """ONNX Runtime sessions behind the runtime's backend interface (``run``, ``to_host``), so the
    parity check chains the decoder's steps with the runtime's own code."""

    def __init__(self, sessions: dict[str, ort.InferenceSession], specs: dict[str, GraphSpec]) -> None:
        self.sessions, self.specs = sessions, specs

    def run(self, graph: str, inputs: Mapping[str, Any], keep_on_device: Sequence[str] = ()) -> dict[str, Any]:
        spec = self.specs[graph]
        values = self.sessions[graph].run(spec.output_names, {k: inputs[k] for k in spec.input_names})
        return dict(zip(spec.output_names, values, strict=True))

    def to_host(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def release(self, graph: str) -> None:
        """Nothing to do: ONNX Runtime sessions keep no per-graph working memory to hand back."""
