"""``escnet-bench``: every backend side by side on the same inputs; JSON, Markdown and plots.

Bad arguments are one line on stderr and exit code 2, before any work.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from escnet_bench.options import (
    DEFAULT_ARTIFACTS,
    DEFAULT_BACKENDS,
    DEFAULT_BATCH,
    DEFAULT_CLASSES,
    DEFAULT_ITERS,
    DEFAULT_OUT,
    DEFAULT_PRESET,
    DEFAULT_WARMUP,
    DEFAULTS_RATIONALE,
    BenchOptions,
    OptionError,
    build_options,
)

if TYPE_CHECKING:
    from escnet_runtime.progress import StepProgress

    from escnet_bench.results import BenchResult

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help="ESC-Net benchmark harness.")
EXIT_USER_ERROR = 2


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USER_ERROR)


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise OptionError(f"{flag} {text!r}: expected an integer") from None


@app.command(help=f"Speed, memory, parity and scaling of every backend, side by side. {DEFAULTS_RATIONALE}")
def bench(
    artifacts: str = typer.Option(DEFAULT_ARTIFACTS, help="Artifacts folder (exported into when it has no manifest)."),
    preset: str = typer.Option(DEFAULT_PRESET, help="Model preset: vit-b16, vit-l14 or tiny."),
    backends: str = typer.Option(
        DEFAULT_BACKENDS,
        help="Comma-separated backends, 'default' (all but the CPU torch.compile peers) or 'all'; "
        "missing ones are skipped.",
    ),
    classes: str = typer.Option(DEFAULT_CLASSES, help="Comma-separated class counts, e.g. 20,59,150,459,847."),
    batch: str = typer.Option(DEFAULT_BATCH, help="Comma-separated batch sizes, e.g. 1,2,4."),
    iters: str = typer.Option(DEFAULT_ITERS, metavar="N", help="Timed runs per figure (>= 1), or 'auto'."),
    warmup: str = typer.Option(str(DEFAULT_WARMUP), metavar="N", help="Untimed warm-up runs per figure (>= 0)."),
    out: str = typer.Option(DEFAULT_OUT, help="Folder for results.json, summary.md and the plots."),
    checkpoint: str | None = typer.Option(
        None, help="Reference weights (the checkpoint the artifacts were exported from)."
    ),
    export: bool = typer.Option(True, help="Export the artifacts when the folder has no manifest."),
    seed: str = typer.Option("0", metavar="N", help="Seed of the inputs and of a randomly initialised model."),
    isolated_memory: bool = typer.Option(True, help="Also measure each CPU backend's peak RSS in a fresh process."),
    class_chunk: str | None = typer.Option(
        None, metavar="N", help="Classes per decoder call, every backend (default: the manifest's / the model's)."
    ),
    cpp_lib: str | None = typer.Option(
        None, metavar="PATH", help="libescnet.so for the cpp-* backends (default: build/cpp/libescnet.so)."
    ),
) -> None:
    try:
        opts = build_options(
            preset,
            backends,
            classes,
            batch,
            None if iters == "auto" else _int(iters, "--iters"),
            _int(warmup, "--warmup"),
            artifacts,
            out,
            checkpoint,
            export,
            _int(seed, "--seed"),
            isolated_memory,
            None if class_chunk is None else _int(class_chunk, "--class-chunk"),
            cpp_lib,
        )
    except OptionError as e:
        raise _fail(str(e)) from None
    logging.basicConfig(level=logging.ERROR, format="%(message)s")  # random-init notes would break the bar
    _write(opts, _run(opts).to_dict())


def _run(opts: BenchOptions) -> BenchResult:
    """The reference model, the artifacts (exported when missing), then the run; a bad folder is one line."""
    from escnet_runtime.progress import StepProgress

    from escnet import ESCNetInputError
    from escnet_bench.artifacts import ArtifactsError, check_artifacts, ensure_artifacts, reference_model
    from escnet_bench.contenders.registry import runtime_backends_to_run
    from escnet_bench.runner import run_benchmark

    try:
        model = reference_model(opts)
        needs_artifacts = bool(runtime_backends_to_run(opts))
        if needs_artifacts:
            check_artifacts(opts)  # a folder of other weights or preset: one line, before any output
        with StepProgress("escnet-bench") as progress:
            _say_weights(opts, progress)
            if needs_artifacts:
                exported = ensure_artifacts(opts, model, step=progress.note)
                _print_export(exported, progress)
            return run_benchmark(opts, model, progress)
    except (ArtifactsError, ESCNetInputError) as e:
        raise _fail(str(e)) from None


def _write(opts: BenchOptions, data: dict[str, Any]) -> None:
    """results.json, the summary, the plots and a sample into --out; the summary on stdout."""
    from escnet_bench.inputs import synthetic_images
    from escnet_bench.outputs import write_outputs
    from escnet_bench.report import markdown_summary

    try:
        paths = write_outputs(data, opts.out, sample=synthetic_images(1, opts.seed)[0])
    except OSError as e:
        raise _fail(f"cannot write to {opts.out}: {e.strerror or e}") from None
    typer.echo(markdown_summary(data))
    typer.echo(f"\nwrote {', '.join(str(Path(p)) for p in paths)}", err=True)


def _say_weights(opts: BenchOptions, progress: StepProgress) -> None:
    """Once, visibly (logging is at ERROR under the bar): a random-init reference model's outputs are noise."""
    from escnet_bench.artifacts import reference_provenance

    weights = reference_provenance(opts)
    if weights["random_init"]:
        progress.print(
            f"escnet-bench: note: weights: {weights['weights']}: a randomly initialised model; speed, memory and "
            "parity figures hold, its segmentations are noise (pass --checkpoint F for trained weights)"
        )


def _print_export(exported: Any, progress: StepProgress) -> None:
    """The on-demand export's parity table and graph sizes, as ``escnet-export onnx`` prints them."""
    if exported is None:
        return
    from escnet_export.checks.parity import parity_table

    progress.print(parity_table(exported.parity))
    progress.print(f"exported {exported.out} in {exported.seconds:.1f} s")


def main() -> None:
    from escnet_runtime.cli_usage import run_app

    run_app(app, "escnet-bench")
