"""``escnet-demo``: a meaningful first run in minutes, end to end, on this machine's CPU.

1. write procedural scenes (``escnet.data.synthetic``): a training split and a held-out split;
2. train the ``tiny`` preset on them (``escnet-train``'s engine);
3. export the trained checkpoint (``escnet-export onnx``'s pipeline: graphs, parity gate, manifest);
4. segment held-out scenes with the exported artifacts (``escnet_runtime.Segmenter``, no torch),
   write the first one's outputs as ``escnet-segment`` does, and print the mIoU against the labels.

It lives in escnet_bench because it uses all three packages (escnet, escnet_export, escnet_runtime).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
EXIT_USER_ERROR = 2


def _segment_held_out(artifacts: Path, data: Path, out: Path, limit: int) -> tuple[str, float, float, int]:
    """Segment the held-out split with the runtime: (first image's line, its mIoU, split mIoU, images)."""
    from escnet_runtime.image_list import image_line
    from escnet_runtime.outputs import OutputPaths, write_outputs
    from escnet_runtime.segmenter import Segmenter

    from escnet.data import SegmentationDataset, synthetic_spec
    from escnet.evaluation.metrics import ConfusionMatrix

    held_out = SegmentationDataset(data, synthetic_spec("val"), limit=limit)
    seg = Segmenter(artifacts, disk_cache=False).set_vocabulary(held_out.prompt_names)
    split = ConfusionMatrix(held_out.num_classes, held_out.ignore_index)
    first_line, first_miou = "", float("nan")
    for i in range(len(held_out)):
        sample = held_out[i]
        result = seg.segment(sample.image)
        split.update(result.labels, sample.label)
        if i == 0:
            one = ConfusionMatrix(held_out.num_classes, held_out.ignore_index)
            one.update(result.labels, sample.label)
            first_miou = one.metrics().miou
            paths = OutputPaths.for_image(out, held_out.items[0][0])
            out.mkdir(parents=True, exist_ok=True)
            meta = {"image": str(held_out.items[0][0]), "backend": "ort-cpu", "sliding_window": False}
            write_outputs(paths, sample.image, result, {**meta, "weights": seg.manifest.weights_provenance().to_dict()})
            first_line = image_line(held_out.items[0][0], paths.all(), result.shares())
    return first_line, first_miou, split.metrics().miou, len(held_out)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not empty; pass another --out or remove it")


@app.command(
    help="Train the tiny preset on synthetic scenes, export it, and segment held-out scenes with the exported "
    "artifacts; prints the mIoU. The 400 training steps are about 80 s of CPU time; measured under heavy load "
    "(load average about 20 on 2 cores) training took 28 min of wall time and the export 18 min. "
    "Writes OUT/data, OUT/run, OUT/artifacts and OUT/segments."
)
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes (must be new or empty).")] = Path(
        "demo"
    ),
    iters: Annotated[int, typer.Option(min=1, help="Training steps (batch 4, about 0.2 s of CPU each).")] = 400,
    time_limit: Annotated[
        float | None,
        typer.Option(help="Stop training after this many seconds instead (the rate decays over them).", min=1),
    ] = None,
    num_train: Annotated[int, typer.Option(min=1, help="Synthetic training scenes.")] = 400,
    num_val: Annotated[int, typer.Option(min=1, help="Held-out scenes segmented at the end.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the scenes and of the training run.")] = 0,
) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    t0 = time.perf_counter()
    try:
        _check_out(out)
    except ValueError as e:
        typer.echo(f"escnet-demo: error: {e}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    try:
        _run(out, iters, time_limit, num_train, num_val, seed, t0)
    except (ValueError, RuntimeError, OSError) as e:  # DatasetError, ExportError, the runtime's errors
        typer.echo(f"escnet-demo: error: {' '.join(str(e).split())}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


def _run(out: Path, iters: int, time_limit: float | None, num_train: int, num_val: int, seed: int, t0: float) -> None:
    from escnet_runtime.progress import StepProgress

    data, run, artifacts, segments = out / "data", out / "run", out / "artifacts", out / "segments"
    with StepProgress("escnet-demo", total=4) as progress:
        progress.step(f"writing {num_train} + {num_val} synthetic scenes into {data}")
        classes = _scenes(data, num_train, num_val, seed)
        budget = f"{iters} steps" if time_limit is None else f"up to {iters} steps or {time_limit:.0f} s"
        progress.step(f"training the tiny preset on {len(classes)} classes ({budget})")
        t_train = time.perf_counter()
        trained = _train(data, run, iters, time_limit, seed)
        t_train = time.perf_counter() - t_train
        progress.step(f"exporting {trained.model_path} into {artifacts}")
        t_export = time.perf_counter()
        _export(trained.model_path, artifacts, progress)
        t_export = time.perf_counter() - t_export
        progress.step(f"segmenting the held-out scenes with {artifacts} (escnet_runtime, no torch)")
        line, first_miou, miou, images = _segment_held_out(artifacts, data, segments, num_val)
    typer.echo(line)
    typer.echo(f"held-out image mIoU {100 * first_miou:.1f}; held-out split ({images} images) mIoU {100 * miou:.1f}")
    typer.echo(
        f"trained {trained.step} steps in {t_train:.0f} s, exported in {t_export:.0f} s, "
        f"{time.perf_counter() - t0:.0f} s in all; learning curve: python -m escnet.training.plot {run}"
    )


def _scenes(data: Path, num_train: int, num_val: int, seed: int) -> list[str]:
    from escnet.data import SyntheticConfig, generate

    config = SyntheticConfig(num_train=num_train, num_val=num_val, seed=seed)
    generate(data, config)
    return config.class_names()


def _train(data: Path, run: Path, iters: int, time_limit: float | None, seed: int):
    from escnet.training import TrainConfig, train

    # Every part starts from a random init here (no weights are downloaded), so the backbone trains at
    # the head's learning rate; validation on 10 held-out scenes gives the learning curve its second line.
    # One thread: the result does not depend on the machine's core count (and a busy machine hurts less).
    config = TrainConfig(
        data=str(data), out=str(run), preset="tiny", iters=iters, batch_size=4, lr=1e-3, backbone_multiplier=1.0,
        seed=seed, log_every=20, ckpt_every=100, val_every=100, val_limit=10, threads=1, time_limit=time_limit,
    )  # fmt: skip
    return train(config)


def _export(checkpoint: Path, artifacts: Path, progress) -> None:
    from escnet_export.errors import ExportError
    from escnet_export.onnx.pipeline import ExportOptions, run_export

    result = run_export(ExportOptions(preset="tiny", out=artifacts, checkpoint=checkpoint), step=progress.note)
    if not result.published:
        failed = [f"{r.graph}/{r.tensor}" for r in result.parity if not r.passed]
        raise ExportError(f"the export failed its parity gate: {failed}")


def main() -> None:
    from escnet_runtime.cli_usage import run_app

    run_app(app, "escnet-demo")


if __name__ == "__main__":
    main()
