"""``escnet-export``: ``onnx`` (three graphs + manifest), ``trt`` (TensorRT engines), ``check`` (preflight).

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

from .errors import EXIT_PARITY_FAILED, EXIT_USER_ERROR, ExportError
from .opset import DEFAULT_OPSET

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export ESC-Net to ONNX and TensorRT, and check artifacts before a build.",
)
out_console = Console(width=160)
err_console = Console(stderr=True)


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
    from .parity import save_parity_report

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
) -> None:
    """Write image_encoder.onnx, text_encoder.onnx, decoder.onnx, the decoder's step graphs, the vocabulary
    and manifest.json."""
    from .onnx_pipeline import ExportOptions, run_export, validate_options
    from .parity import parity_table
    from .progress import steps

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
    )
    try:
        validate_options(opts)
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
) -> None:
    """Build one TensorRT engine per graph, with profiles for B, N and T and a build manifest."""
    from .trt_build import TrtOptions, run_trt_build
    from .trt_env import require_tensorrt_and_gpu

    try:
        require_tensorrt_and_gpu()  # before any work
        opts = TrtOptions.parse(onnx_dir, out, fp16, batch, classes, timing_cache, workspace, texts)
        record = run_trt_build(opts, lambda msg: err_console.print(msg, markup=False))
    except ExportError as e:
        raise fail(str(e)) from None
    out_console.print(f"wrote {len(record.engines)} engines to {opts.out}")


@app.command()
def check(
    folder: Annotated[Path, typer.Argument(help="artifacts folder")] = Path("artifacts"),
    fp16: Annotated[bool, typer.Option(help="run the fp16 risk report (ONNX Runtime, CPU)")] = True,
) -> None:
    """Preflight without a GPU: TensorRT op support, dynamic-shape hazards, size, fp16 risk."""
    from .check import run_check
    from .check_report import print_report

    try:
        report = run_check(folder, fp16=fp16)
    except ExportError as e:
        raise fail(str(e)) from None
    print_report(out_console, report)
    if not report.ready:
        raise typer.Exit(EXIT_PARITY_FAILED)


def main() -> None:
    from escnet_runtime.cli_usage import run_app

    run_app(app, "escnet-export")


if __name__ == "__main__":
    main()
