"""``escnet-export triton``: a Triton model repository around an artifacts folder.

CPU server (default): one Python-backend model ``escnet`` that runs the whole pipeline in process
through escnet_runtime on the backend named (ort-cpu, ov-cpu, ...: any name the runtime's
registry knows). GPU server (``bls``): the graphs as ``onnxruntime_onnx`` / ``tensorrt_plan``
models, and ``escnet`` calling them through BLS.

The artifacts are copied into ``escnet/1/artifacts`` and the config names the manifest's sha256;
the model refuses to load when it differs, and the runtime checks every file against the
manifest. The repository is built beside ``out`` and swapped in whole (``escnet_export.publish``):
a failed export leaves the previous repository as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from escnet_runtime.backends import BACKENDS
from escnet_runtime.contract import ENGINE_DIR, MANIFEST_FILE
from escnet_runtime.fileio import sha256_file
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest
from escnet_runtime.serving import DEFAULT_MAX_CLASSES

from escnet_export.errors import ExportError
from escnet_export.outputs import check_overlap
from escnet_export.publish import publish, staged_export
from escnet_export.triton.config import CONFIG_FILE, PIPELINE_MODEL, PipelineSettings, config_text, pipeline_config
from escnet_export.triton.graphs import Engines, write_graph_models

GPU_BACKENDS = ("ort-cuda", "ort-trt", "trt")  # in-process backends that want a GPU instance
SOURCES = Path(__file__).parent
MODEL_FILES = {"model.py": "model.py", "bls_backend.py": "bls.py"}  # repository name -> source


@dataclass(frozen=True)
class TritonOptions:
    artifacts: Path
    out: Path
    backend: str = "ort-cpu"
    max_batch: int = 4
    instances: int = 1
    bls: bool = False
    engines: Path | None = None  # escnet-export trt's folder, for tensorrt_plan models (with bls)
    vocabulary: tuple[str, ...] = ()
    max_classes: int = DEFAULT_MAX_CLASSES
    class_chunk: int | None = None
    overwrite: bool = False  # replace an existing --out that is not a repository written by this command


def validate(opts: TritonOptions) -> Manifest:
    """Every user mistake as one ExportError, before anything is written."""
    try:
        manifest = load_manifest(opts.artifacts, verify=True)
    except ManifestError as e:
        raise ExportError(str(e)) from None
    if not opts.bls and opts.backend not in BACKENDS:
        raise ExportError(f"unknown backend {opts.backend!r}; expected one of {', '.join(BACKENDS)}")
    if opts.engines is not None and not opts.bls:
        raise ExportError("--engines serves TensorRT engines as tensorrt_plan models: give --bls too")
    for flag, value, low in (("--max-batch", opts.max_batch, 0), ("--instances", opts.instances, 1)):
        if value < low:
            raise ExportError(f"{flag} is {value}; expected at least {low}")
    if opts.max_classes < 1 or (opts.class_chunk is not None and opts.class_chunk < 1):
        raise ExportError("--max-classes and --class-chunk must be at least 1")
    if len(opts.vocabulary) > opts.max_classes:
        raise ExportError(f"the vocabulary has {len(opts.vocabulary)} classes, over --max-classes {opts.max_classes}")
    check_overlap(opts.out, {"artifacts folder": opts.artifacts, "engine folder": opts.engines})
    out = opts.out.resolve()
    if out.exists() and not out.is_dir():
        raise ExportError(f"{opts.out} is a file; expected a folder for the repository")
    ours = (out / PIPELINE_MODEL / CONFIG_FILE).is_file()
    if out.exists() and not ours and not opts.overwrite and any(out.iterdir()):
        raise ExportError(
            f"{opts.out} exists and is not a repository written by escnet-export triton; not replacing it "
            "(give --overwrite to replace it whole)"
        )
    return manifest


def _copy_artifacts(src: Path, dst: Path, manifest: Manifest, names: Sequence[str]) -> None:
    for name in (MANIFEST_FILE, *names):
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / name, target)
    if sha256_file(dst / MANIFEST_FILE) != sha256_file(src / MANIFEST_FILE):
        raise ExportError(f"{src / MANIFEST_FILE} changed while it was copied")
    for name in names:  # the bytes copied are the bytes the manifest hashed
        if name in manifest.files and sha256_file(dst / name) != manifest.files[name]:
            raise ExportError(f"{src / name} does not match the manifest; export the artifacts again")


def _write_pipeline(stage: Path, opts: TritonOptions, manifest: Manifest, engines: Engines | None) -> None:
    version = stage / PIPELINE_MODEL / "1"
    version.mkdir(parents=True)
    artifacts = version / "artifacts"
    if opts.bls:
        bls_models = write_graph_models(stage, opts.artifacts, manifest, engines, opts.instances)
        _copy_artifacts(opts.artifacts, artifacts, manifest, [manifest.tokenizer.vocab_file])
    else:
        bls_models = {}
        names = list(manifest.files)
        engine_dir = opts.artifacts / ENGINE_DIR
        if opts.backend == "trt" and engine_dir.is_dir():
            names += [f"{ENGINE_DIR}/{p.name}" for p in sorted(engine_dir.iterdir()) if p.is_file()]
        _copy_artifacts(opts.artifacts, artifacts, manifest, names)
    for target, source in MODEL_FILES.items():
        if target == "model.py" or opts.bls:
            shutil.copyfile(SOURCES / source, version / target)
    settings = PipelineSettings(
        backend="bls" if opts.bls else opts.backend,
        manifest_sha256=sha256_file(artifacts / MANIFEST_FILE),
        max_batch=opts.max_batch,
        instances=opts.instances,
        gpu=opts.bls or opts.backend in GPU_BACKENDS,
        vocabulary=opts.vocabulary,
        max_classes=opts.max_classes,
        class_chunk=opts.class_chunk,
        bls_models=bls_models,
    )
    (stage / PIPELINE_MODEL / CONFIG_FILE).write_text(config_text(pipeline_config(settings)), encoding="utf-8")


def write_repository(opts: TritonOptions) -> Path:
    """Validate, build the repository beside ``opts.out``, then swap it in (all or nothing,
    through the exporter's one publisher; the repository is the command's own, replaced whole)."""
    manifest = validate(opts)
    engines = Engines.load(opts.engines, manifest) if opts.engines is not None else None
    with staged_export(opts.out) as run:
        try:
            _write_pipeline(run.staging, opts, manifest, engines)
        except OSError as e:
            raise ExportError(f"cannot write the repository {opts.out}: {e.strerror or e}") from None
        publish(run, [], keep_user_files=False)
    return opts.out
