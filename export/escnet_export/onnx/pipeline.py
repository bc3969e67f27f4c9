"""``escnet-export onnx``: load the model, export three graphs, check them, publish atomically.

Everything is written into a hidden staging folder beside the output folder first (see
``publish``). Only after every graph has passed onnx.checker and the parity gate, and the
manifest listing every file with its sha256 is written, does the staging folder take the
output folder's place, in one rename: the old artifacts stay valid until the new ones are
complete, and an interrupted, failed or out-of-space export leaves them as they were.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from escnet_runtime.contract import DEFAULT_CLASS_CHUNK, VOCAB_FILE, decoder_step_names, graph_specs
from escnet_runtime.manifest import Manifest, write_manifest

from escnet_export.checks.parity import Comparison
from escnet_export.checks.parity_run import graph_parity
from escnet_export.errors import ExportError
from escnet_export.onnx.graph_export import PROTOBUF_LIMIT, ExportedGraph, export_graph
from escnet_export.onnx.manifest_build import (
    build_manifest,
    copy_vocab,
    source_weight_hashes,
    tool_versions,
    weights_provenance,
)
from escnet_export.onnx.model_loading import check_preset, load_model
from escnet_export.onnx.opset import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from escnet_export.onnx.simplify import Simplifier, available_simplifier, simplify_graph
from escnet_export.onnx.wrappers import graph_modules, model_dims, sample_inputs
from escnet_export.outputs import artifacts_clash, check_owner, is_artifacts_folder
from escnet_export.publish import publish, staged_export

Step = Callable[[str], None]  # reports the start of a named step (progress bar)


@dataclass(frozen=True)
class ExportOptions:
    preset: str = "vit-b16"
    out: Path = Path("artifacts")
    checkpoint: Path | None = None
    clip_weights: str | None = None
    sam_weights: str | None = None
    seed: int = 0  # torch seed for the parts no weights are given for (recorded in the manifest)
    opset: int = DEFAULT_OPSET
    simplify: bool = True
    trace_batch: int = 2  # sizes the graphs are traced with ...
    trace_classes: int = 3
    parity_batch: int = 3  # ... and different sizes for the parity check, so a baked-in size fails
    parity_classes: int = 5
    external_threshold: int = PROTOBUF_LIMIT  # parameter bytes from which a graph uses external data
    class_chunk: int = DEFAULT_CLASS_CHUNK  # classes per decoder call the manifest recommends to the runtime
    overwrite: bool = False  # replace an existing --out that is not an artifacts folder


@dataclass
class ExportResult:
    out: Path
    manifest: Manifest | None
    graphs: dict[str, ExportedGraph]
    parity: list[Comparison]
    seconds: float
    published: bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.parity)


def validate_options(opts: ExportOptions) -> None:
    """User mistakes caught before any work."""
    check_preset(opts.preset)
    if not MIN_OPSET <= opts.opset <= MAX_OPSET:
        raise ExportError(
            f"--opset {opts.opset}: expected {MIN_OPSET}..{MAX_OPSET} "
            "(the dynamo exporter's minimum to TensorRT's ONNX parser maximum)"
        )
    if opts.class_chunk < 1:
        raise ExportError(f"--class-chunk {opts.class_chunk}: expected at least 1")
    if opts.checkpoint is not None and (opts.clip_weights or opts.sam_weights):
        raise ExportError("--checkpoint already holds every weight; do not combine it with --clip/--sam-weights")
    # a checkpoint inside --out is read before the swap and carried into the new folder with the user's files
    check_owner(opts.out, "an artifacts folder", is_artifacts_folder, artifacts_clash, opts.overwrite)


def space_error(error: BaseException) -> OSError | None:
    """The out-of-space OSError behind ``error`` (exporters wrap it in their own exceptions)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return error
        error = error.__cause__ or error.__context__
    return None


def run_export(opts: ExportOptions, step: Step = lambda _name: None) -> ExportResult:
    """The whole ``onnx`` command; raises ExportError for user mistakes."""
    start = time.perf_counter()
    validate_options(opts)
    try:
        return _run_export(opts, step, start)
    except Exception as e:
        full = space_error(e)
        if full is None:
            raise
        raise ExportError(
            f"cannot write the export of {opts.out}: {full.strerror or 'out of space'}; the export was abandoned "
            f"and {opts.out} left as it was"
        ) from None


def _run_export(opts: ExportOptions, step: Step, start: float) -> ExportResult:
    timings: dict[str, float] = {}
    with staged_export(opts.out, note=step) as run:
        staging = run.staging
        step("loading the model")
        model = load_model(opts.preset, opts.checkpoint, opts.clip_weights, opts.sam_weights, opts.seed)
        specs = graph_specs(model_dims(model))
        modules = graph_modules(model)
        trace = sample_inputs(model, opts.trace_batch, opts.trace_classes, seed=0)
        graphs: dict[str, ExportedGraph] = {}
        simplifier = available_simplifier() if opts.simplify else None
        for name, spec in specs.items():
            step(f"exporting {spec.file}")
            t0 = time.perf_counter()
            graphs[name] = export_graph(modules[name], spec, trace[name], staging, opts.opset, opts.external_threshold)
            if simplifier is not None:
                step(f"simplifying {spec.file}")
                graphs[name] = simplify_graph(graphs[name], spec)
            timings[name] = time.perf_counter() - t0
        step("parity against PyTorch (ONNX Runtime)")
        sample = sample_inputs(model, opts.parity_batch, opts.parity_classes, seed=1)
        steps = decoder_step_names(model.config.num_blocks)
        parity = graph_parity(model, staging, specs, sample, steps=steps)
        if not all(r.passed for r in parity):
            return ExportResult(opts.out, None, graphs, parity, time.perf_counter() - start, False, timings)
        step("writing the manifest")
        copy_vocab(staging)
        files = [f for g in graphs.values() for f in g.files] + [VOCAB_FILE]
        sources = source_weight_hashes(opts.checkpoint, opts.clip_weights, opts.sam_weights, opts.seed)
        manifest = build_manifest(
            model,
            specs,
            staging,
            files,
            opts.opset,
            tool_versions(simplifier or Simplifier("none", "")),
            sources,
            extra=export_extra(graphs, parity, opts),
            decoder_steps=steps,
            class_chunk=opts.class_chunk,
            provenance=weights_provenance(opts.checkpoint, sources),
        )
        publish(run, files, lambda folder: write_manifest(folder, manifest))
    return ExportResult(opts.out, manifest, graphs, parity, time.perf_counter() - start, True, timings)


def export_extra(graphs: dict[str, ExportedGraph], parity: list[Comparison], opts: ExportOptions) -> dict[str, object]:
    return {
        "graphs": {
            name: {"nodes": g.nodes, "bytes": g.bytes, "external_data": g.external_data, "export_seconds": g.seconds}
            for name, g in graphs.items()
        },
        "trace_sizes": {"batch": opts.trace_batch, "classes": opts.trace_classes},
        "parity": {"sizes": {"batch": opts.parity_batch, "classes": opts.parity_classes}},
        "parity_table": [r.to_dict() for r in parity],
        "simplify": opts.simplify,
    }
