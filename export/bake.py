"""``escnet-export bake``: an artifacts folder + class names -> one graph with the vocabulary inside.

The PyTorch model is rebuilt from the weights the artifacts were exported from (a checkpoint
given again, verified against the manifest's sha256, or the recorded random-init seed); the
class embeddings come from the artifacts' own text encoder through the runtime (the numbers
the Python runtime uses). ``BakedSegmenter`` is exported traced at a batch of 2 and two image
sizes' worth of symbolic H, W; ORT labels must equal the Python ``Segmenter``'s on >= 99.9 % of
pixels on images of several sizes and aspect ratios, or nothing is written. Files are staged
and published as ``escnet-export onnx`` does (the manifest last).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from escnet_runtime.baked import BakedManifest, write_baked_manifest
from escnet_runtime.contract import IMAGE, LABELS, MANIFEST_FILE, SEGMENTER, baked_graph_spec
from escnet_runtime.errors import InputError
from escnet_runtime.fileio import sha256_file
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest
from escnet_runtime.render import palette
from escnet_runtime.vocabulary import check_class_names

from .baked_graph import BakedSegmenter
from .errors import ExportError
from .manifest_build import source_weight_hashes, tool_versions
from .model_loading import load_model
from .onnx_export import PROTOBUF_LIMIT, export_graph
from .onnx_pipeline import Step, current_umask, output_folder
from .simplify import Simplifier
from .wrappers import model_dims

PARITY_MIN = 0.999  # fraction of pixels whose label equals the Python Segmenter's
POST_CHUNK = 32  # classes per upsampling + arg-max step inside the graph
TRACE_SIZE = (2, 97, 131)  # B, H, W the graph is traced with (all symbolic)


@dataclass(frozen=True)
class BakeOptions:
    artifacts: Path
    classes: tuple[str, ...]
    out: Path
    checkpoint: Path | None = None
    clip_weights: str | None = None
    sam_weights: str | None = None
    class_chunk: int | None = None  # classes per decoder step (default: the manifest's)
    post_chunk: int = POST_CHUNK
    parity_sizes: tuple[tuple[int, int], ...] = ((240, 320), (333, 250), (64, 200))


@dataclass(frozen=True)
class BakeResult:
    out: Path
    agreement: dict[str, float]  # image size -> fraction of equal labels
    seconds: float
    nodes: int
    bytes: int


def _artifacts(folder: Path) -> Manifest:
    try:
        return load_manifest(folder)
    except ManifestError as e:
        raise ExportError(str(e)) from None


def _check_weights(opts: BakeOptions, manifest: Manifest) -> int:
    """The torch seed to rebuild with; ExportError when the weights given are not the artifacts'."""
    recorded = manifest.source_weights
    seed = int(recorded.get("seed", 0))
    given = source_weight_hashes(opts.checkpoint, opts.clip_weights, opts.sam_weights, seed)
    if given != recorded:
        raise ExportError(
            f"{opts.artifacts} was exported from other weights ({_short(recorded)}) than given ({_short(given)}); "
            "pass the same --checkpoint (or --clip-weights/--sam-weights)"
        )
    return seed


def _short(hashes: dict[str, str]) -> str:
    return ", ".join(f"{k} {v[:12]}" for k, v in sorted(hashes.items()))


def class_embeddings(artifacts: Path, names: Sequence[str]) -> np.ndarray:
    """(T, P, D) float32 from the artifacts' text encoder (ONNX Runtime CPU, fp32), via the runtime."""
    from escnet_runtime import Segmenter

    return Segmenter(artifacts, backend="ort-cpu", disk_cache=False).encode_vocabulary(names)


def label_parity(
    artifacts: Path, graph: Path, names: Sequence[str], sizes: Sequence[tuple[int, int]]
) -> dict[str, float]:
    """Fraction of pixels where the baked graph (ORT CPU) and the Python Segmenter agree, per image size."""
    from escnet_runtime import Segmenter

    seg = Segmenter(artifacts, backend="ort-cpu", disk_cache=False).set_vocabulary(list(names))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(graph), sess_options=opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    out = {}
    for h, w in sizes:
        image = sample_image(rng, h, w)
        want = seg.segment(image).labels
        got = sess.run([LABELS], {IMAGE: image[None]})[0][0]
        out[f"{h}x{w}"] = float(np.mean(got == want))
    return out


def sample_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8: smooth colour fields plus noise (regions for the prompts to find)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([np.sin(xx / (7 + 5 * c) + c) + np.cos(yy / (9 + 3 * c)) for c in range(3)], axis=-1)
    noise = rng.normal(0, 0.3, (h, w, 3))
    return np.clip(127.5 + 60 * (base + noise), 0, 255).astype(np.uint8)


def run_bake(opts: BakeOptions, step: Step = lambda _name: None) -> BakeResult:
    start = time.perf_counter()
    try:
        names = tuple(check_class_names(list(opts.classes)))
    except InputError as e:
        raise ExportError(str(e)) from None
    manifest = _artifacts(opts.artifacts)
    chunk = opts.class_chunk or manifest.class_chunk or len(names)
    if chunk < 1 or opts.post_chunk < 1:
        raise ExportError("--class-chunk and the post-processing chunk must be at least 1")
    seed = _check_weights(opts, manifest)
    with output_folder(opts.out) as staging:
        step("loading the model")
        model = load_model(manifest.preset, opts.checkpoint, opts.clip_weights, opts.sam_weights, seed)
        step(f"encoding {len(names)} class names (the artifacts' text encoder)")
        emb = torch.from_numpy(class_embeddings(opts.artifacts, names))
        module = BakedSegmenter(model, emb, chunk, opts.post_chunk).eval()
        spec = baked_graph_spec(model_dims(model), len(names))
        step(f"exporting {spec.file} ({len(names)} classes, chunks of {chunk})")
        b, h, w = TRACE_SIZE
        trace = (torch.zeros(b, h, w, 3, dtype=torch.uint8),)
        graph = export_graph(module, spec, trace, staging, manifest.opset, PROTOBUF_LIMIT)
        step("parity against the Python runtime (ONNX Runtime CPU)")
        agreement = label_parity(opts.artifacts, graph.path, names, opts.parity_sizes)
        worst = min(agreement.values())
        if worst < PARITY_MIN:
            raise ExportError(
                f"baked labels agree with the Python runtime on {worst:.4%} of pixels (< {PARITY_MIN:.1%}); "
                f"nothing written ({agreement})"
            )
        step("writing the manifest")
        baked = BakedManifest(
            graph=spec,
            class_names=names,
            colours=tuple(tuple(int(v) for v in c) for c in palette(len(names))),
            preprocess=manifest.preprocess,
            source={
                "preset": manifest.preset,
                "artifacts_manifest_sha256": sha256_file(opts.artifacts / MANIFEST_FILE),
                "artifacts_files": manifest.files,
                "source_weights": manifest.source_weights,
            },
            files={f: sha256_file(staging / f) for f in graph.files},
            class_chunk=chunk,
            post_chunk=opts.post_chunk,
            opset=manifest.opset,
            versions=tool_versions(Simplifier("none", "")),
            extra={"parity": {"labels_vs_python_segmenter": agreement, "minimum": PARITY_MIN}, "nodes": graph.nodes},
        )
        _publish(staging, opts.out, list(graph.files), baked)
    return BakeResult(opts.out, agreement, time.perf_counter() - start, graph.nodes, graph.bytes)


def _publish(staging: Path, out: Path, files: list[str], manifest: BakedManifest) -> None:
    with contextlib.suppress(FileNotFoundError):
        (out / MANIFEST_FILE).unlink()  # the old manifest no longer describes the folder
    mode = 0o666 & ~current_umask()
    for name in files:
        os.chmod(staging / name, mode)
        os.replace(staging / name, out / name)
    os.chmod(write_baked_manifest(out, manifest), mode)


__all__ = ["SEGMENTER", "BakeOptions", "BakeResult", "run_bake"]
