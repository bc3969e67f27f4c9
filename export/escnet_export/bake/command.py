"""``escnet-export bake``: an artifacts folder + class names -> one graph with the vocabulary inside.

The graph is composed from the artifacts' own graphs (``baked_graph.compose``): their image
encoder and decoder steps, read once and checked against the manifest's sha256, plus small
pre- and post-processing graphs exported from torch. The class embeddings come from the
artifacts' own text encoder through the runtime (the numbers the Python runtime uses). ONNX
Runtime's labels must equal the Python ``Segmenter``'s on >= 99.9 % of pixels on images of
several sizes and aspect ratios, or nothing is written. Files are staged and published as
``escnet-export onnx`` does (the manifest last).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from escnet_runtime.baked import BakedManifest, write_baked_manifest
from escnet_runtime.contract import IMAGE, IMAGE_ENCODER, LABELS, MANIFEST_FILE, SEGMENTER, GraphSpec, baked_graph_spec
from escnet_runtime.errors import InputError
from escnet_runtime.fileio import sha256_file
from escnet_runtime.graph_files import verified_graph
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest
from escnet_runtime.render import palette
from escnet_runtime.vocabulary import check_class_names

from escnet_export.bake.graph import Post, Pre, compose, export_small
from escnet_export.errors import ExportError
from escnet_export.onnx.graph_export import finish_graph
from escnet_export.onnx.manifest_build import tool_versions
from escnet_export.onnx.pipeline import Step
from escnet_export.onnx.simplify import Simplifier
from escnet_export.outputs import baked_clash, check_overlap, check_owner, is_baked_folder
from escnet_export.publish import publish, staged_export

PARITY_MIN = 0.999  # fraction of pixels whose label equals the Python Segmenter's
# The graph holds one copy of the decoder steps per class chunk (no loop over chunks), so its size,
# ONNX Runtime's session build and the parity check grow with the chunk count.
MAX_CHUNKS = 256


@dataclass(frozen=True)
class BakeOptions:
    artifacts: Path
    classes: tuple[str, ...]
    out: Path
    class_chunk: int | None = None  # classes per decoder step (default: the manifest's)
    overwrite: bool = False  # replace an existing --out that is not a baked folder
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
        manifest = load_manifest(folder)
    except ManifestError as e:
        raise ExportError(str(e)) from None
    if not manifest.decoder_steps:
        raise ExportError(f"{folder}: no decoder step graphs; export the artifacts again with this escnet-export")
    return manifest


def read_graph(folder: Path, manifest: Manifest, name: str) -> onnx.ModelProto:
    """One graph of the artifacts, from the bytes the runtime's verified reader hashed (confined to
    the folder, listed in the manifest, sha256 checked)."""
    try:
        verified = verified_graph(folder, manifest, name)
    except ManifestError as e:
        raise ExportError(str(e)) from None
    if verified.external:
        raise ExportError(f"{verified.file} keeps its weights in external data; baking such graphs is not supported")
    return onnx.load_from_string(verified.model)


def class_embeddings(artifacts: Path, names: Sequence[str]) -> np.ndarray:
    """(T, P, D) float32 from the artifacts' text encoder (ONNX Runtime CPU, fp32), via the runtime."""
    from escnet_runtime import Segmenter

    return Segmenter(artifacts, backend="ort-cpu", disk_cache=False).encode_vocabulary(names)


def pre_post_graphs(manifest: Manifest, opset: int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """The pre- and post-processing graphs (uint8 image -> view; logits chunk -> running arg-max)."""
    b, h, w = torch.export.Dim("batch", min=1), torch.export.Dim("height", min=1), torch.export.Dim("width", min=1)
    tc = torch.export.Dim("classes", min=1)
    image = torch.zeros(2, 97, 131, 3, dtype=torch.uint8)
    pre = export_small(Pre(manifest.preprocess), (image,), ({0: b, 1: h, 2: w},), opset)
    side = int(manifest.graphs[manifest.decoder_steps[-1]].outputs[0].shape[-1])
    logits = torch.zeros(2, 3, side, side)
    best, labels, start = torch.zeros(2, 97, 131), torch.zeros(2, 97, 131, dtype=torch.int64), torch.tensor(0)
    dims = ({0: b, 1: tc}, {0: b, 1: h, 2: w}, {0: b, 1: h, 2: w}, {0: b, 1: h, 2: w}, None)
    post = export_small(Post(manifest.preprocess.image_size), (logits, image, best, labels, start), dims, opset)
    return pre, post


def label_parity(
    artifacts: Path,
    graph: Path,
    names: Sequence[str],
    sizes: Sequence[tuple[int, int]],
    step: Step = lambda _name: None,
) -> dict[str, float]:
    """Fraction of pixels where the baked graph (ORT CPU) and the Python Segmenter agree, per image size.

    ``step`` hears each engine's start per size and, after the first size, the time the rest should take
    (a large vocabulary unrolls many decoder copies into the graph: minutes per image)."""
    from escnet_runtime import Segmenter

    start = time.perf_counter()
    step("parity: loading the Python runtime and the baked graph (ONNX Runtime CPU)")
    seg = Segmenter(artifacts, backend="ort-cpu", disk_cache=False).set_vocabulary(list(names))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(graph), sess_options=opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    first = time.perf_counter()
    for i, (h, w) in enumerate(sizes):
        if i:
            eta = f"; about {(time.perf_counter() - first) / i * (len(sizes) - i):.0f} s left"
        else:
            eta = f" (loading took {first - start:.0f} s)"
        step(f"parity {i + 1}/{len(sizes)}: {h}x{w} image, Python runtime then baked graph{eta}")
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


def validate(opts: BakeOptions) -> tuple[tuple[str, ...], Manifest, int]:
    """Every user mistake as one ExportError before any work: (class names, the artifacts' manifest,
    classes per decoder step)."""
    if opts.class_chunk is not None and opts.class_chunk < 1:
        raise ExportError(f"--class-chunk {opts.class_chunk}: expected at least 1")
    try:
        names = tuple(check_class_names(list(opts.classes)))
    except InputError as e:
        raise ExportError(str(e)) from None
    check_overlap(opts.out, {"artifacts folder": opts.artifacts})
    check_owner(opts.out, "a baked folder", is_baked_folder, baked_clash, opts.overwrite)
    manifest = _artifacts(opts.artifacts)
    chunk = opts.class_chunk or manifest.class_chunk or len(names)
    copies = -(-len(names) // chunk)
    if copies > MAX_CHUNKS:
        raise ExportError(
            f"{len(names)} classes in chunks of {chunk} would put {copies} copies of the decoder steps into "
            f"the graph (at most {MAX_CHUNKS}); give --class-chunk {-(-len(names) // MAX_CHUNKS)} or more"
        )
    return names, manifest, chunk


def baked_manifest(
    opts: BakeOptions,
    manifest: Manifest,
    names: tuple[str, ...],
    chunk: int,
    spec: GraphSpec,
    files: dict[str, str],
    extra: dict[str, object],
) -> BakedManifest:
    """The baked folder's manifest: ``files`` {name: sha256}, ``extra`` (parity figures, node count)."""
    return BakedManifest(
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
        files=files,
        class_chunk=chunk,
        post_chunk=chunk,
        opset=manifest.opset,
        versions=tool_versions(Simplifier("none", "")),
        extra=extra,
    )


def run_bake(opts: BakeOptions, step: Step = lambda _name: None) -> BakeResult:
    start = time.perf_counter()
    names, manifest, chunk = validate(opts)
    with staged_export(opts.out, note=step) as run:
        staging = run.staging
        step(f"encoding {len(names)} class names (the artifacts' text encoder)")
        emb = class_embeddings(opts.artifacts, names)
        step("exporting the pre- and post-processing graphs")
        pre, post = pre_post_graphs(manifest, manifest.opset)
        step(f"composing segmenter.onnx ({len(names)} classes, decoder steps in chunks of {chunk})")
        graphs = {g: read_graph(opts.artifacts, manifest, g) for g in (IMAGE_ENCODER, *manifest.decoder_steps)}
        side = int(manifest.graphs[manifest.decoder_steps[-1]].outputs[0].shape[-1])  # 4g
        spec = baked_graph_spec(side, len(names))
        try:
            model = compose(graphs, manifest.decoder_steps, IMAGE_ENCODER, emb, chunk, pre, post, spec)
        except ValueError as e:
            raise ExportError(f"cannot compose the baked graph: {e}") from None
        del graphs
        t0 = time.perf_counter()
        path = staging / spec.file
        onnx.save(model, str(path))
        del model
        graph = finish_graph(spec, path, False, time.perf_counter() - t0)
        agreement = label_parity(opts.artifacts, graph.path, names, opts.parity_sizes, step)
        worst = min(agreement.values())
        if worst < PARITY_MIN:
            raise ExportError(
                f"baked labels agree with the Python runtime on {worst:.4%} of pixels (< {PARITY_MIN:.1%}); "
                f"nothing written ({agreement})"
            )
        step("writing the manifest")
        files = {f: sha256_file(staging / f) for f in graph.files}
        extra = {"parity": {"labels_vs_python_segmenter": agreement, "minimum": PARITY_MIN}, "nodes": graph.nodes}
        baked = baked_manifest(opts, manifest, names, chunk, spec, files, extra)
        publish(run, list(graph.files), lambda folder: write_baked_manifest(folder, baked))
    return BakeResult(opts.out, agreement, time.perf_counter() - start, graph.nodes, graph.bytes)


__all__ = ["SEGMENTER", "BakeOptions", "BakeResult", "run_bake"]
