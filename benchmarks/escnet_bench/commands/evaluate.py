"""``escnet-eval``: mIoU of a PyTorch checkpoint or of exported artifacts on a prepared data set.

    escnet-eval --dataset ade150 --root datasets --checkpoint escnet.safetensors [--sliding-window]
    escnet-eval --dataset ade150 --root datasets --artifacts exported/ [--limit 100]

Both paths run the same loop (:func:`escnet.evaluation.evaluate`) over a predictor
(image uint8 HxWx3 -> label map HxW), so the two mIoUs compare directly on the same images.
This lives in escnet_bench because it uses escnet_runtime, which escnet may not import.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from escnet.evaluation import EvalResult, Predictor

app = typer.Typer(add_completion=False, help="Evaluate ESC-Net (mIoU, per-class IoU, pixel accuracy).")


class EvalUsageError(ValueError):
    """A bad combination of options or an unavailable component."""


def _artifacts_predictor(artifacts: Path, names: list[str], sliding_window: bool, backend: str):
    """The deployed model through escnet_runtime.Segmenter (imported only on this path)."""
    try:
        import escnet_runtime
    except ImportError:
        raise EvalUsageError("escnet_runtime.Segmenter is not available (escnet_runtime is not installed)") from None
    segmenter_cls = getattr(escnet_runtime, "Segmenter", None)
    if segmenter_cls is None:
        raise EvalUsageError("escnet_runtime.Segmenter is not available")
    segmenter = segmenter_cls(artifacts, backend=backend)
    _say_random(segmenter.manifest.weights_provenance().notice())
    segmenter.set_vocabulary(names)
    predict = lambda image: segmenter.segment(image, sliding_window=sliding_window).labels  # noqa: E731
    return predict, f"{artifacts} ({segmenter.manifest.weights_precision()} graphs, {backend})"


def _say_random(notice: str | None) -> None:
    """Once, on stderr: the model evaluated is a random init (its mIoU measures nothing)."""
    if notice:
        typer.echo(f"escnet-eval: note: {notice}", err=True)


def _torch_predictor(checkpoint: Path, names: list[str], sliding_window: bool, device: str):
    import torch

    from escnet import load_checkpoint
    from escnet.checkpoint import checkpoint_provenance
    from escnet.evaluation import TorchPredictor

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_checkpoint(checkpoint, map_location="cpu")
    origin = checkpoint_provenance(checkpoint)
    if origin is not None:
        from escnet_runtime.contract import Provenance

        _say_random(Provenance(str(origin["weights"]), bool(origin["random_init"])).notice())
    return TorchPredictor(model, names, sliding_window=sliding_window, device=device)


def check_output(output: Path) -> None:
    """--output names a JSON file to (over)write: not a folder, under a folder (or one to create)."""
    if output.is_dir():
        raise EvalUsageError(f"--output {output}: is a folder; expected a JSON file, e.g. {output / 'metrics.json'}")
    blocker = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise EvalUsageError(f"--output {output}: {blocker} is not a folder")


@app.command()
def evaluate_command(
    dataset: Annotated[str, typer.Option(help="ade150, ade847, pc59, pc459, voc20, voc20b, coco171-val or synthetic.")],
    root: Annotated[
        Path, typer.Option(help="Data root (holding e.g. ADEChallengeData2016/), or the set's own folder.")
    ],
    checkpoint: Annotated[Path | None, typer.Option(help="An ESC-Net checkpoint (.safetensors).")] = None,
    artifacts: Annotated[
        Path | None, typer.Option(help="Exported artifacts folder (run through escnet_runtime).")
    ] = None,
    sliding_window: Annotated[
        bool, typer.Option("--sliding-window", help="CAT-Seg's sliding-window protocol.")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate only the first N images.")] = None,
    device: Annotated[str, typer.Option(help="PyTorch device for --checkpoint: auto, cpu, cuda.")] = "auto",
    backend: Annotated[str, typer.Option(help="escnet_runtime backend for --artifacts.")] = "ort-cpu",
    output: Annotated[
        Path | None, typer.Option(help="Write the metrics (with per-class IoU) to this JSON file (not a folder).")
    ] = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="Print every class's IoU.")] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="A bar on a terminal, a line every 10 s elsewhere.")
    ] = True,
) -> None:
    """Evaluate one model on one data set."""
    from escnet_runtime.progress import StepProgress

    from escnet.data import DatasetError, open_dataset
    from escnet.evaluation import evaluate

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        if (checkpoint is None) == (artifacts is None):
            raise EvalUsageError("give exactly one of --checkpoint FILE or --artifacts DIR")
        if output is not None:
            check_output(output)
        data = open_dataset(dataset, root, limit)
        predictor, source = _predictor(checkpoint, artifacts, data.prompt_names, sliding_window, device, backend)
        title = f"escnet-eval {dataset}"
        with StepProgress(title, len(data), transient=True, min_interval=10, enabled=progress) as bar:
            result = evaluate(
                data, predictor, data.num_classes, data.ignore_index, data.spec.merge_from,
                progress=lambda done, total: bar.update(done, "images"),
            )  # fmt: skip
    except (ValueError, DatasetError, OSError, RuntimeError) as e:  # the runtime's BackendError is a RuntimeError
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    view = "sliding window" if sliding_window else "single view"
    typer.echo(f"{dataset}: {result.images} images, {data.num_classes} classes, {view}, {source}")
    _print_metrics(result, data.class_names if per_class else None)
    if output is not None:
        record = {"dataset": dataset, "source": source, "sliding_window": sliding_window}
        _write_record(output, {**record, "images": result.images, "seconds": result.seconds}, result, data.class_names)


def _predictor(
    checkpoint: Path | None, artifacts: Path | None, names: list[str], sliding_window: bool, device: str, backend: str
) -> tuple[Predictor, str]:
    """(image HxWx3 uint8 -> labels HxW, what was evaluated) for --checkpoint or --artifacts."""
    if checkpoint is not None:
        return _torch_predictor(checkpoint, names, sliding_window, device), str(checkpoint)
    assert artifacts is not None
    if not artifacts.is_dir():
        raise EvalUsageError(f"{artifacts}: artifacts folder not found")
    return _artifacts_predictor(artifacts, names, sliding_window, backend)


def _print_metrics(result: EvalResult, per_class: Sequence[str] | None) -> None:
    """mIoU, accuracies and seconds per image; every class's IoU when ``per_class`` names them."""
    m = result.metrics
    typer.echo(f"mIoU {100 * m.miou:.2f}  pixel acc {100 * m.pixel_accuracy:.2f}  mean acc {100 * m.mean_accuracy:.2f}")
    typer.echo(f"{result.seconds / max(1, result.images):.3f} s/image")
    if per_class is not None:
        for name, iou in zip(per_class, m.iou, strict=True):
            typer.echo(f"  {name:<40} {'-' if math.isnan(iou) else f'{100 * iou:.2f}'}")


def _write_record(output: Path, record: dict[str, Any], result: EvalResult, class_names: Sequence[str]) -> None:
    """The run and its metrics (per-class IoU included) as JSON, written atomically."""
    from escnet.io_utils import atomic_path

    try:
        with atomic_path(output) as tmp:
            tmp.write_text(json.dumps({**record, **result.metrics.to_dict(class_names)}, indent=2), encoding="utf-8")
    except OSError as e:
        typer.echo(f"error: cannot write {output}: {e.strerror or e}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    from escnet_runtime.cli_usage import run_app

    run_app(app, "escnet-eval")


if __name__ == "__main__":
    main()
