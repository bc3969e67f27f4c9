"""``escnet-export``: ``onnx`` (three graphs + manifest), ``trt`` (TensorRT engines), ``check`` (preflight),
``triton`` (a Triton model repository).

User mistakes and missing tools print one line on stderr and exit 2; a parity or readiness
failure exits 1; no tracebacks for either.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer
from escnet_runtime.contract import DEFAULT_CLASS_CHUNK
from rich.console import Console

from escnet_export.errors import EXIT_PARITY_FAILED, EXIT_USER_ERROR, ExportError
from escnet_export.onnx.opset import DEFAULT_OPSET

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export ESC-Net to ONNX and TensorRT, and check artifacts before a build.",
)
out_console = Console(width=160)
err_console = Console(stderr=True)


# Options several subcommands share, declared once.
ArtifactsOption = Annotated[Path, typer.Option(help="artifacts folder written by `escnet-export onnx`")]
ClassesOption = Annotated[str | None, typer.Option(help='comma-separated class names, e.g. "cat,grass,sky"')]
ClassesFileOption = Annotated[Path | None, typer.Option(help="file with one class name per line (UTF-8)")]
OverwriteOption = Annotated[
    bool, typer.Option(help="replace an existing --out that this command did not write (never what it reads)")
]


def fail(message: str) -> typer.Exit:
    """One line on stderr; the caller raises the returned Exit (code 2)."""
    err_console.print(f"escnet-export: error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USER_ERROR)


def parity_report_path(out: Path) -> Path:
    """Where a refused export's parity table goes: beside the artifacts folder, OUT.parity-failed.txt."""
    out = Path(os.path.abspath(out))
    return out.with_name(f"{out.name}.parity-failed.txt")


def parity_refusal(rows: list, out: Path) -> typer.Exit:
    """One line (the first failure, where the full table is) and exit code 1."""
    from escnet_export.checks.parity import save_parity_report

    failed = [r for r in rows if not r.passed]
    first = f"{failed[0].graph}/{failed[0].tensor}: {'; '.join(failed[0].failures)}"
    try:
        where = f"full table in {save_parity_report(rows, parity_report_path(out))}"
    except OSError as e:
        where = f"the full table could not be saved ({e.strerror or e})"
    err_console.print(
        f"escnet-export: error: parity over tolerance in {len(failed)} of {len(rows)} checks ({first}); "
        f"nothing written, {out} left as it was; {where}",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    return typer.Exit(EXIT_PARITY_FAILED)


@app.command()
def onnx(
    preset: Annotated[str, typer.Option(help="vit-b16, vit-l14 or tiny")] = "vit-b16",
    checkpoint: Annotated[Path | None, typer.Option(help="ESC-Net checkpoint (.safetensors)")] = None,
    clip_weights: Annotated[str | None, typer.Option(help="CLIP state dict (with no checkpoint)")] = None,
    sam_weights: Annotated[str | None, typer.Option(help="SAM checkpoint (with no checkpoint)")] = None,
    seed: Annotated[int, typer.Option(help="torch seed for parts with no weights (recorded in the manifest)")] = 0,
    out: Annotated[Path, typer.Option(help="artifacts folder")] = Path("artifacts"),
    opset: Annotated[int, typer.Option(help="ONNX opset (18..20)")] = DEFAULT_OPSET,
    class_chunk: Annotated[
        int, typer.Option(help="classes per decoder call the runtime uses for larger vocabularies")
    ] = DEFAULT_CLASS_CHUNK,
    simplify: Annotated[bool, typer.Option(help="simplify the graphs with onnxslim when installed")] = True,
    overwrite: OverwriteOption = False,
) -> None:
    """Write image_encoder.onnx, text_encoder.onnx, decoder.onnx, the decoder's step graphs, the vocabulary
    and manifest.json."""
    from escnet_export.checks.parity import parity_table
    from escnet_export.onnx.pipeline import ExportOptions, run_export
    from escnet_export.progress import steps

    opts = ExportOptions(
        preset=preset,
        out=out,
        checkpoint=checkpoint,
        clip_weights=clip_weights,
        sam_weights=sam_weights,
        seed=seed,
        opset=opset,
        class_chunk=class_chunk,
        simplify=simplify,
        overwrite=overwrite,
    )
    try:  # run_export validates the options before any work
        with steps(err_console, "escnet-export onnx") as step:
            result = run_export(opts, step)
    except ExportError as e:
        raise fail(str(e)) from None
    if not result.passed:
        raise parity_refusal(result.parity, out)
    out_console.print(parity_table(result.parity))
    for name, g in result.graphs.items():
        out_console.print(
            f"{name}: {g.nodes} nodes, {g.bytes / 2**20:.1f} MiB{' (external data)' if g.external_data else ''}, "
            f"{result.timings.get(name, g.seconds):.1f} s"
        )
    with contextlib.suppress(OSError):
        parity_report_path(out).unlink()  # an earlier refusal's table no longer applies
    out_console.print(f"wrote {out} in {result.seconds:.1f} s")
    provenance = result.manifest.provenance if result.manifest is not None else None
    if provenance is not None:
        out_console.print(f"weights: {provenance.weights}", markup=False, highlight=False)
        if provenance.notice():
            err_console.print(f"escnet-export: note: {provenance.notice()}", markup=False, highlight=False)


@app.command()
def trt(
    onnx_dir: Annotated[Path, typer.Option(help="artifacts folder written by `escnet-export onnx`")] = Path(
        "artifacts"
    ),
    out: Annotated[Path | None, typer.Option(help="engine folder (default: ONNX_DIR/trt)")] = None,
    fp16: Annotated[bool, typer.Option(help="fp16 engines; overflow-prone layers pinned to fp32")] = False,
    batch: Annotated[str, typer.Option(help="images per call, MIN:OPT:MAX")] = "1:1:4",
    classes: Annotated[
        str | None,
        typer.Option(
            help="classes per decoder call, MIN:OPT:MAX (default 1:C:C, C = the manifest's class chunk: "
            "the runtime sends no more classes per call)"
        ),
    ] = None,
    texts: Annotated[
        str | None, typer.Option(help="texts per text-encoder call, MIN:OPT:MAX (default 1:classes x templates:256)")
    ] = None,
    timing_cache: Annotated[Path | None, typer.Option(help="timing cache, loaded and saved")] = None,
    workspace: Annotated[float, typer.Option(help="workspace memory pool, GiB")] = 4.0,
    overwrite: OverwriteOption = False,
) -> None:
    """Build one TensorRT engine per graph, with profiles for B, N and T and a build manifest."""
    from escnet_export.progress import steps
    from escnet_export.trt.build import TrtOptions, run_trt_build
    from escnet_export.trt.env import require_tensorrt_and_gpu

    try:
        require_tensorrt_and_gpu()  # before any work
        opts = TrtOptions.parse(onnx_dir, out, fp16, batch, classes, timing_cache, workspace, texts, overwrite)
        with steps(err_console, "escnet-export trt") as step:
            record = run_trt_build(opts, step)
    except ExportError as e:
        raise fail(str(e)) from None
    out_console.print(f"wrote {len(record.engines)} engines to {opts.out}")


@app.command()
def check(
    folder: Annotated[Path, typer.Argument(help="artifacts folder")] = Path("artifacts"),
    fp16: Annotated[bool, typer.Option(help="run the fp16 risk report (ONNX Runtime, CPU)")] = True,
    json_output: Annotated[
        bool, typer.Option("--json", help="print the report as one JSON object on stdout (for machines)")
    ] = False,
) -> None:
    """Preflight without a GPU: TensorRT op support, dynamic-shape hazards, size, fp16 risk."""
    from escnet_export.checks.preflight import run_check
    from escnet_export.checks.report import print_report, report_dict

    try:
        report = run_check(folder, fp16=fp16)
    except ExportError as e:
        raise fail(str(e)) from None
    if json_output:
        import json

        typer.echo(json.dumps(report_dict(report), indent=2, allow_nan=False))
    else:
        print_report(out_console, report)
    if not report.ready:
        raise typer.Exit(EXIT_PARITY_FAILED)


@app.command()
def triton(
    artifacts: ArtifactsOption = Path("artifacts"),
    out: Annotated[Path, typer.Option(help="model repository to write (replaced whole)")] = Path("triton-repo"),
    backend: Annotated[
        str, typer.Option(help="runtime backend of the Python model (ort-cpu, ov-cpu, ...)")
    ] = "ort-cpu",
    max_batch: Annotated[int, typer.Option(help="max_batch_size (dynamic batching when > 0)")] = 4,
    instances: Annotated[int, typer.Option(help="model instances (instance_group count)")] = 1,
    bls: Annotated[
        bool, typer.Option(help="GPU server: graphs as onnxruntime/tensorrt models, called via BLS")
    ] = False,
    engines: Annotated[
        Path | None, typer.Option(help="with --bls: engine folder of `escnet-export trt` (tensorrt_plan models)")
    ] = None,
    classes: Annotated[str | None, typer.Option(help='vocabulary for requests that name none: "a,b,c"')] = None,
    classes_file: ClassesFileOption = None,
    max_classes: Annotated[int, typer.Option(help="most classes one request may name")] = 1024,
    class_chunk: Annotated[int | None, typer.Option(help="classes per decoder call (default: the manifest's)")] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Write a Triton model repository: the Python model `escnet` (whole pipeline via escnet_runtime), or
    with --bls the graphs as onnxruntime_onnx / tensorrt_plan models called through BLS."""
    from escnet_export.triton.repository import TritonOptions, write_repository

    try:
        names = class_names(classes, classes_file, required=False)
        opts = TritonOptions(
            artifacts, out, backend, max_batch, instances, bls, engines, names, max_classes, class_chunk, overwrite
        )
        write_repository(opts)
    except ExportError as e:
        raise fail(str(e)) from None
    from escnet_export.triton.config import restricted_http_option

    out_console.print(f"wrote {out} ({'bls' if bls else backend}); serve it with", markup=False, highlight=False)
    out_console.print(
        f"  tritonserver --model-repository {out} {restricted_http_option('<a secret>')}",
        markup=False, highlight=False,
    )  # fmt: skip
    out_console.print(
        "  (tritonserver 2.51 aborts on some JSON requests over HTTP: untrusted clients use gRPC; docs/serving.md)",
        markup=False, highlight=False,
    )  # fmt: skip


def class_names(classes: str | None, classes_file: Path | None, required: bool = True) -> tuple[str, ...]:
    """The one class-list reader of every subcommand: --classes "a,b" or --classes-file (one name a line,
    UTF-8, a BOM ignored, blank lines skipped), never both; none at all only where not ``required``.
    Names are checked as the runtime checks them (non-blank, distinct, within its limit)."""
    from escnet_runtime.cli import read_classes
    from escnet_runtime.errors import InputError
    from escnet_runtime.vocabulary import check_class_names

    if classes is not None and classes_file is not None:
        raise ExportError("give one of --classes and --classes-file, not both")
    if classes is None and classes_file is None and not required:
        return ()
    try:
        return tuple(check_class_names(read_classes(classes, classes_file)))
    except InputError as e:
        raise ExportError(str(e)) from None


@app.command()
def bake(
    artifacts: ArtifactsOption = Path("artifacts"),
    classes: ClassesOption = None,
    classes_file: ClassesFileOption = None,
    out: Annotated[Path, typer.Option(help="folder for segmenter.onnx and its manifest")] = Path("baked"),
    class_chunk: Annotated[
        int | None, typer.Option(help="classes per decoder step inside the graph (default: the manifest's)")
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """One graph, segmenter.onnx: uint8 RGB images (B, H, W, 3) -> labels (B, H, W), the classes baked in."""
    from escnet_export.bake.command import BakeOptions, run_bake
    from escnet_export.progress import steps

    try:
        names = class_names(classes, classes_file)
        opts = BakeOptions(artifacts, names, out, class_chunk, overwrite)
        with steps(err_console, "escnet-export bake") as step:
            result = run_bake(opts, step)
    except ExportError as e:
        raise fail(str(e)) from None
    shown = ", ".join(f"{size}: {share:.4%}" for size, share in result.agreement.items())
    out_console.print(f"labels equal to the Python runtime's: {shown}")
    out_console.print(
        f"wrote {out} ({len(names)} classes, {result.nodes} nodes, {result.bytes / 2**20:.1f} MiB) "
        f"in {result.seconds:.1f} s"
    )


# vocab takes bake's inputs (artifacts and class names, their options declared once above): typer reads a
# command's options from its signature, so the two signatures begin alike by design.
@app.command()
def vocab(
    artifacts: ArtifactsOption = Path("artifacts"),
    classes: ClassesOption = None,
    classes_file: ClassesFileOption = None,
    out: Annotated[Path, typer.Option(help="vocabulary file to write")] = Path("vocabulary.escvocab"),
    overwrite: OverwriteOption = False,
) -> None:
    """Encode class names into a vocabulary file (the C++ runtime's input; format in runtime/vocab_file.py)."""
    from escnet_runtime import Segmenter
    from escnet_runtime.errors import BackendError, InputError
    from escnet_runtime.manifest import ManifestError
    from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary

    from escnet_export.outputs import check_file_owner, check_overlap, is_vocabulary_file

    try:
        names = class_names(classes, classes_file)
        check_overlap(out, {"artifacts folder": artifacts})
        check_file_owner(out, "a vocabulary file", is_vocabulary_file, overwrite)
        seg = Segmenter(artifacts, backend="ort-cpu")
        write_vocabulary(out, vocabulary_of(seg, names))
    except (ExportError, InputError, ManifestError, BackendError) as e:
        raise fail(str(e)) from None
    out_console.print(f"wrote {out} ({len(names)} classes)")


@app.command()
def quantize(
    artifacts: Annotated[Path, typer.Option(help="fp32 artifacts folder written by `escnet-export onnx`")] = Path(
        "artifacts"
    ),
    out: Annotated[Path, typer.Option(help="int8 artifacts folder to write")] = Path("artifacts-int8"),
    calibration: Annotated[
        Path | None, typer.Option(help="data set folder: classes.txt, images/train (calibration), images/val + labels")
    ] = None,
    synthetic: Annotated[int | None, typer.Option(help="calibrate on N generated synthetic scenes instead")] = None,
    engine: Annotated[str, typer.Option(help="openvino (NNCF) or onnxruntime")] = "openvino",
    calibration_size: Annotated[int, typer.Option(help="images of --calibration to use")] = 64,
    held_out: Annotated[int, typer.Option(help="held-out scenes the gates judge on")] = 20,
    smooth_quant: Annotated[bool, typer.Option(help="NNCF SmoothQuant on MatMuls (openvino engine)")] = True,
    miou_tolerance: Annotated[float, typer.Option(help="gate: mIoU points from fp32 allowed, either way")] = 0.5,
    min_agreement: Annotated[float, typer.Option(help="gate: label agreement on confident pixels")] = 0.995,
    overwrite: Annotated[bool, typer.Option(help="replace a non-empty --out folder")] = False,
) -> None:
    """Post-training static INT8 artifacts, written only if the accuracy gates hold (docs/quantization.md)."""
    from escnet_export.quantize.cli import quantize_command

    quantize_command(locals(), out_console, err_console)


def main() -> None:
    from escnet_runtime.cli_usage import run_app

    run_app(app, "escnet-export")


if __name__ == "__main__":
    main()
