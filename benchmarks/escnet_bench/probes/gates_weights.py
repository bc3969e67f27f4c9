"""Trained weights for the gates: a checkpoint trained on the synthetic set until it is confident.

    python -m escnet_bench.probes.gates_weights [--preset vit-b16] [--cache ~/.cache/escnet/gates]

Random weights leave every class tied, so the gates (``escnet_export.quantize.gates``) need
trained weights. This command makes them once and caches them outside the repository:
CACHE/data (``escnet.data.make_synthetic``: 400 training and 20 held-out scenes), CACHE/PRESET
(the ``escnet-train`` run, resumable), and CACHE/PRESET/gates-weights.json once the fp32 model's
top-2 class-score margin exceeds 0.05 on at least 80 % of the held-out pixels. It trains in rounds
of --round-iters steps (``escnet-train --resume`` with a larger ``--iters``), measuring after each,
up to --max-iters; a second call returns the cached checkpoint at once. The tiny preset reaches
that in minutes; vit-b16 takes hours on a 2-core CPU. These weights are not CLIP's: see
docs/quantization.md. Prints the checkpoint's path; exit 1 when --max-iters is spent first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

CONFIDENT_SHARE = 0.80  # of held-out pixels whose fp32 top-2 margin exceeds the gates' margin
RECIPE = ["--lr", "1e-3", "--backbone-multiplier", "1", "--val-every", "0"]
READY = "gates-weights.json"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=__doc__)


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "escnet" / "gates"


def confident_share(checkpoint: Path, data: Path, held_out: int) -> float:
    """Share of held-out pixels whose fp32 (PyTorch) top-2 class-score margin exceeds the gates' margin."""
    import torch
    from escnet_export.quantize.gates import GateRule, top2_margin

    from escnet import load_checkpoint
    from escnet.data import open_dataset
    from escnet.inference import predict_scores, preprocess

    model, rule = load_checkpoint(checkpoint).eval(), GateRule()
    dataset = open_dataset("synthetic-val", data, limit=held_out)
    confident = pixels = 0
    with torch.no_grad():
        text = model.embed_classes(dataset.prompt_names)
        for i in range(len(dataset)):
            image = dataset[i].image
            scores = predict_scores(model, preprocess(torch.from_numpy(image.copy())), text, image.shape[:2])
            margin = top2_margin(scores.numpy())
            confident += int((margin > rule.confident_margin).sum())
            pixels += margin.size
    return confident / max(1, pixels)


def ensure_weights(preset: str, cache: Path, round_iters: int, max_iters: int, threads: int) -> Path | None:
    """The cached confident checkpoint of ``preset`` (trained now when missing); None when
    ``max_iters`` steps did not make it confident."""
    run = cache / preset
    ready = run / READY
    if ready.is_file():
        return Path(json.loads(ready.read_text(encoding="utf-8"))["checkpoint"])
    data = cache / "data"
    if not (data / "classes.txt").is_file():
        make = [sys.executable, "-m", "escnet.data.make_synthetic", str(data), "--num-train", "400", "--num-val", "20"]
        subprocess.run(make, check=True)
    iters = round_iters
    while iters <= max_iters:
        train = ["escnet-train", "--preset", preset, "--data", str(data), "--out", str(run), "--iters", str(iters)]
        train += [*RECIPE, "--threads", str(threads), *(["--resume"] if (run / "train_config.json").exists() else [])]
        subprocess.run(train, check=True)
        checkpoint = run / "model.safetensors"
        share = confident_share(checkpoint, data, 20)
        typer.echo(f"{preset} after {iters} steps: {share:.1%} of held-out pixels confident", err=True)
        if share >= CONFIDENT_SHARE:
            from escnet_runtime.fileio import atomic_path, sha256_file

            record = {"checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint), "steps": iters}
            with atomic_path(ready) as tmp:
                tmp.write_text(json.dumps({**record, "confident_share": share}, indent=2), encoding="utf-8")
            return checkpoint
        iters += round_iters
    return None


@app.command()
def main(
    preset: Annotated[str, typer.Option(help="vit-b16 or tiny")] = "vit-b16",
    cache: Annotated[Path | None, typer.Option(help="cache folder (default ~/.cache/escnet/gates)")] = None,
    round_iters: Annotated[int, typer.Option(min=1, help="training steps between two measurements")] = 1000,
    max_iters: Annotated[int, typer.Option(min=1, help="training steps at most")] = 20000,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads")] = 2,
) -> None:
    """Print the confident checkpoint's path (training it first when it is not cached)."""
    from escnet.presets import PRESETS

    if preset not in PRESETS:
        raise typer.BadParameter(
            f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}", param_hint="'--preset'"
        )
    try:
        checkpoint = ensure_weights(preset, cache or default_cache(), round_iters, max_iters, threads)
    except subprocess.CalledProcessError as e:
        typer.echo(f"error: {e.cmd[0]} exited with {e.returncode}", err=True)
        raise typer.Exit(1) from None
    if checkpoint is None:
        typer.echo(
            f"error: {preset} was not confident on {CONFIDENT_SHARE:.0%} of the pixels after {max_iters} steps",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(str(checkpoint))


if __name__ == "__main__":
    from escnet_runtime.cli_usage import run_app

    run_app(app, "python -m escnet_bench.probes.gates_weights")
