"""``escnet-export trt``: one TensorRT engine per graph through polygraphy's TensorRT backend.

polygraphy parses the ONNX file (``network_from_onnx_path``), a ``PostprocessNetwork`` step
pins the fp32 layers through TensorRT's own API (``layer.precision``, ``set_output_type``;
polygraphy's ``SetLayerPrecisions`` takes names only, and our choice also looks at layer
types), ``CreateConfig`` carries the profile, fp16 flag, ``precision_constraints="obey"``,
workspace pool and timing cache, and ``engine_from_network`` builds and saves the cache.
Engines and the build manifest (``build.json``, last) are built beside the engine folder and
published all-or-nothing (``escnet_export.publish``), as every target of the exporter is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from escnet_runtime.contract import BUILD_MANIFEST_FILE, ENGINE_DIR, ENGINE_SUFFIX
from escnet_runtime.fileio import atomic_path, sha256_file
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest

from escnet_export.errors import ExportError
from escnet_export.outputs import check_overlap, check_owner, engine_clash, is_engine_folder
from escnet_export.publish import publish, staged_export
from escnet_export.trt.env import GpuInfo, require_tensorrt_and_gpu
from escnet_export.trt.precision import PinnedNode, fp32_nodes, layers_to_pin, pin_layers
from escnet_export.trt.profiles import AxisRange, InputProfile, axis_ranges, default_texts, input_profiles

BUILD_FORMAT = "escnet-trt-build"
BUILD_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TrtOptions:
    onnx_dir: Path
    out: Path
    fp16: bool
    batch: AxisRange
    classes: AxisRange
    texts: AxisRange
    timing_cache: Path | None
    workspace_gib: float
    manifest: Manifest

    @staticmethod
    def parse(
        onnx_dir: Path,
        out: Path | None,
        fp16: bool,
        batch: str,
        classes: str | None,
        timing_cache: Path | None,
        workspace_gib: float,
        texts: str | None = None,
        overwrite: bool = False,
    ) -> TrtOptions:
        """Validate everything that can be validated without TensorRT (one-line ExportErrors).

        ``out``: the engine folder, by default the artifacts' own ``trt/`` (where the runtime looks);
        ``overwrite``: replace an existing ``out`` that holds engines this command did not build."""
        b = AxisRange.parse(batch, "batch")
        c = AxisRange.parse(classes, "classes") if classes else None
        if not 0 < workspace_gib <= 1024:
            raise ExportError(f"--workspace {workspace_gib}: expected a size in GiB between 0 and 1024")
        out = out or onnx_dir / ENGINE_DIR
        check_overlap(out, {"artifacts folder": onnx_dir}, allowed=[onnx_dir / ENGINE_DIR])
        check_owner(out, "a TensorRT engine folder", is_engine_folder, engine_clash, overwrite)
        try:
            manifest = load_manifest(onnx_dir)
        except ManifestError as e:
            raise ExportError(str(e)) from None
        c = c or default_classes(manifest)
        p = len(manifest.templates)
        n = AxisRange.parse(texts, "texts") if texts else default_texts(c, p, manifest.texts_per_call())
        if timing_cache is not None and timing_cache.exists() and not timing_cache.is_file():
            raise ExportError(f"--timing-cache {timing_cache}: not a file")
        return TrtOptions(onnx_dir, out, fp16, b, c, n, timing_cache, workspace_gib, manifest)

    def profiles(self) -> dict[str, list[InputProfile]]:
        ranges = axis_ranges(self.batch, self.classes, self.texts)
        return {name: input_profiles(spec, ranges) for name, spec in self.manifest.graphs.items()}


def default_classes(manifest: Manifest) -> AxisRange:
    """Classes per decoder call: up to the runtime's class chunk (larger vocabularies run the
    decoder's step graphs chunk by chunk), or 1:150:1024 for artifacts without step graphs."""
    chunk = manifest.class_chunk if manifest.decoder_steps else None
    return AxisRange(1, chunk, chunk) if chunk else AxisRange(1, 150, 1024)


@dataclass
class EngineRecord:
    graph: str
    file: str
    sha256: str
    onnx_file: str
    onnx_sha256: str
    profile: list[dict[str, Any]]
    precision_overrides: list[dict[str, str]]
    onnx_fp32_nodes: list[dict[str, Any]]
    seconds: float


@dataclass
class BuildRecord:
    tensorrt: str
    gpu: GpuInfo
    fp16: bool
    flags: dict[str, Any]
    engines: dict[str, EngineRecord] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BUILD_FORMAT,
            "format_version": BUILD_FORMAT_VERSION,
            "tensorrt": self.tensorrt,
            "gpu": {"name": self.gpu.name, "compute_capability": self.gpu.compute_capability},
            "fp16": self.fp16,
            "precision": "fp16" if self.fp16 else "fp32",
            "flags": self.flags,
            "engines": {name: vars(e) for name, e in self.engines.items()},
        }


def onnx_pinned_nodes(path: Path) -> list[PinnedNode]:
    return fp32_nodes(onnx.load(str(path), load_external_data=False))


def build_engine(
    trt: Any, opts: TrtOptions, graph: str, profile: list[InputProfile], target: Path
) -> tuple[list[dict[str, str]], list[PinnedNode]]:
    """Build one engine into ``target``; returns (per-layer overrides, the ONNX nodes chosen)."""
    from polygraphy.backend.trt import (
        CreateConfig,
        PostprocessNetwork,
        Profile,
        engine_from_network,
        network_from_onnx_path,
        save_engine,
    )

    onnx_path = opts.onnx_dir / opts.manifest.graphs[graph].file
    pinned = onnx_pinned_nodes(onnx_path) if opts.fp16 else []
    overrides: list[dict[str, str]] = []

    def pin(network: Any) -> None:
        overrides.extend(pin_layers(trt, network, layers_to_pin(trt, network, pinned)))

    network = network_from_onnx_path(str(onnx_path))
    if opts.fp16:
        network = PostprocessNetwork(network, pin, name="pin-fp32-layers")
    p = Profile()
    for inp in profile:
        p.add(inp.name, min=inp.min, opt=inp.opt, max=inp.max)
    cache = str(opts.timing_cache) if opts.timing_cache is not None and opts.timing_cache.is_file() else None
    config = CreateConfig(
        fp16=opts.fp16,
        precision_constraints="obey" if opts.fp16 else None,
        profiles=[p],
        load_timing_cache=cache,
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(opts.workspace_gib * 2**30)},
    )
    save_cache = str(opts.timing_cache) if opts.timing_cache is not None else None
    engine = engine_from_network(network, config=config, save_timing_cache=save_cache)
    save_engine(engine, str(target))  # into the staging folder: published whole, or not at all
    return overrides, pinned


def build_record(opts: TrtOptions, trt_version: str, gpu: GpuInfo) -> BuildRecord:
    return BuildRecord(
        tensorrt=trt_version,
        gpu=gpu,
        fp16=opts.fp16,
        flags={
            "fp16": opts.fp16,
            "precision_constraints": "obey" if opts.fp16 else None,
            "workspace_gib": opts.workspace_gib,
            "timing_cache": str(opts.timing_cache) if opts.timing_cache else None,
            "ranges": {"batch": str(opts.batch), "classes": str(opts.classes), "texts": str(opts.texts)},
        },
    )


def _engine(trt: Any, opts: TrtOptions, graph: str, profile: list[InputProfile], target: Path) -> EngineRecord:
    """Build one graph's engine into ``target`` and describe it."""
    spec = opts.manifest.graphs[graph]
    start = time.perf_counter()
    try:
        overrides, pinned = build_engine(trt, opts, graph, profile, target)
    except Exception as e:  # polygraphy/TensorRT report parser and builder failures as exceptions
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ExportError(f"{graph}: TensorRT engine build failed: {first}") from e
    return EngineRecord(
        graph=graph,
        file=target.name,
        sha256=sha256_file(target),
        onnx_file=spec.file,
        onnx_sha256=opts.manifest.files[spec.file],
        profile=[{"input": i.name, **i.to_dict()} for i in profile],
        precision_overrides=overrides,
        onnx_fp32_nodes=[p.to_dict() for p in pinned],
        seconds=time.perf_counter() - start,
    )


def write_build_manifest(folder: Path, record: BuildRecord) -> Path:
    path = folder / BUILD_MANIFEST_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record.to_dict(), indent=2) + "\n")
    return path


def run_trt_build(opts: TrtOptions, step: Callable[[str], None]) -> BuildRecord:
    """Build every engine beside ``opts.out`` and publish the folder (engines, build.json last) through
    the exporter's one publisher: an engine folder is either the old one or the new complete one."""
    trt, gpu = require_tensorrt_and_gpu()
    record = build_record(opts, trt.__version__, gpu)
    with staged_export(opts.out, note=step) as run:
        for graph, profile in opts.profiles().items():
            target = run.staging / f"{graph}{ENGINE_SUFFIX}"
            step(f"building {target.name} ({'fp16' if opts.fp16 else 'fp32'})")
            record.engines[graph] = _engine(trt, opts, graph, profile, target)
        files = [e.file for e in record.engines.values()]
        publish(run, files, lambda folder: write_build_manifest(folder, record))
    return record
