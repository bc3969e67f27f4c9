"""Write a synthetic set: ``python -m escnet.data.make_synthetic OUT [--num-train N ...]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .errors import DatasetError
from .synthetic import SyntheticConfig, generate


def main(
    out: Annotated[Path, typer.Argument(help="Folder to write (images/, annotations_detectron2/, classes.txt).")],
    num_train: Annotated[int, typer.Option(min=0, help="Training scenes (images/train).")] = 200,
    num_val: Annotated[int, typer.Option(min=0, help="Held-out scenes (images/val), for validation.")] = 50,
    size: Annotated[int, typer.Option(help="Image side, pixels.")] = 128,
    num_stuff: Annotated[int, typer.Option(help="Background classes (first N of the catalogue).")] = 3,
    num_things: Annotated[int, typer.Option(help="Shape classes (first N of the catalogue).")] = 5,
    min_radius: Annotated[float, typer.Option(help="Smallest object radius, fraction of the size.")] = 0.05,
    max_radius: Annotated[float, typer.Option(help="Largest object radius, fraction of the size.")] = 0.22,
    small_fraction: Annotated[float, typer.Option(help="Share of objects drawn at the small end.")] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same scenes.")] = 0,
) -> None:
    """Write procedural segmentation scenes (textured backgrounds and shapes, with exact labels) in the
    layout escnet-train and escnet-eval read (--dataset synthetic): images/, annotations_detectron2/,
    classes.txt. Nothing is downloaded."""
    cfg = SyntheticConfig(
        num_train=num_train, num_val=num_val, size=size, num_stuff=num_stuff, num_things=num_things,
        min_radius=min_radius, max_radius=max_radius, small_fraction=small_fraction, seed=seed,
    )  # fmt: skip
    try:
        generate(out, cfg)
    except DatasetError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{out}: {num_train} train + {num_val} val images, classes {', '.join(cfg.class_names())}")


if __name__ == "__main__":
    typer.run(main)
